// After a successful proposal: the draft the propose page kept in this browser is done.
(function () {
  "use strict";
  var me = document.getElementById("draft-clear");
  try { localStorage.removeItem("rules-service.draft." + me.dataset.ruleset); } catch (e) { /* nothing kept */ }
})();
