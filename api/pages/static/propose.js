// The editor: thresholds form <-> YAML text, check as you type, try, preview. No libraries.
(function () {
  "use strict";
  var root = document.getElementById("editor");
  if (!root) { return; }
  var text = document.getElementById("content");
  var csrf = root.dataset.csrf;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body)
    }).then(function (r) { return r.json().then(function (data) { return {status: r.status, data: data}; }); });
  }

  function problemLine(p) {
    return (p.line ? "line " + p.line + ": " : "") + (p.place ? p.place + ": " : "") + p.message;
  }

  // --- thresholds form -> the thresholds block of the YAML, keeping comments and layout.
  function setThreshold(key, value) {
    var lines = text.value.split("\n");
    var inBlock = false;
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (/^thresholds:\s*(#.*)?$/.test(line)) { inBlock = true; continue; }
      if (inBlock && /^\S/.test(line)) { break; }
      if (!inBlock) { continue; }
      var m = line.match(/^(\s+)([A-Za-z_][\w]*)(\s*:\s*)([^#]*?)(\s*#.*)?$/);
      if (m && m[2] === key) {
        var comment = m[5] || "";
        var shown = value;
        var pad = m[4].length - shown.length;
        if (comment && pad > 0) { comment = new Array(pad + 1).join(" ") + comment; }
        lines[i] = m[1] + m[2] + m[3] + shown + comment;
        text.value = lines.join("\n");
        return true;
      }
    }
    return false;
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-threshold]"), function (input) {
    input.addEventListener("input", function () {
      var value = input.value;
      if (input.type === "text" && !/^[\w.-]+$/.test(value)) { value = JSON.stringify(value); }
      if (setThreshold(input.dataset.threshold, value)) { scheduleCheck(); }
    });
  });

  // --- check as you type
  var timer = null, seq = 0;
  var status = document.getElementById("check-status");
  var problems = document.getElementById("problems");
  var testsSummary = document.getElementById("tests-summary");
  function scheduleCheck() {
    clearTimeout(timer);
    timer = setTimeout(check, 500);
  }
  function check() {
    var mine = ++seq;
    status.textContent = "Checking…";
    post(root.dataset.check, {content: text.value}).then(function (res) {
      if (mine !== seq) { return; }
      problems.textContent = "";
      testsSummary.textContent = "";
      if (res.status !== 200) { status.textContent = res.data.error ? res.data.error.message : "The check failed."; return; }
      var d = res.data;
      d.problems.forEach(function (p) { problems.appendChild(el("li", {}, [problemLine(p)])); });
      var failed = d.tests.filter(function (t) { return !t.passed; });
      failed.forEach(function (t) {
        problems.appendChild(el("li", {}, ["test '" + t.name + "' fails: " + t.failures.join("; ")]));
      });
      if (d.tests.length) {
        testsSummary.textContent = (d.tests.length - failed.length) + " of " + d.tests.length + " embedded tests pass.";
      }
      status.textContent = d.ok ? "No problems: the draft can be proposed."
        : (d.problems.length + failed.length) + " problem" + ((d.problems.length + failed.length) === 1 ? "" : "s") + ":";
      status.className = d.ok ? "flash ok" : "flash error";
    }).catch(function () { if (mine === seq) { status.textContent = "The server could not be reached."; } });
  }
  text.addEventListener("input", scheduleCheck);

  // --- try on sample inputs: the active version's decision beside the draft's, each with why
  function partLine(c) {
    var values = Object.keys(c.values).map(function (k) {
      return k + " = " + (c.values[k] === null ? "absent" : JSON.stringify(c.values[k]));
    }).join(", ");
    var text = (c.holds ? "✓ " : "✗ ") + c.text + (c.holds ? " holds" : " does not hold") +
      (values ? ": " + values : "") + (c.missed_by !== undefined ? " (misses by " + c.missed_by + ")" : "");
    return el("li", {"class": c.holds ? "holds" : "fails"}, [text]);
  }

  function decisionWhy(box, r) {
    if (r.problems) {
      box.appendChild(el("p", {}, ["This input is refused:"]));
      r.problems.forEach(function (p) { box.appendChild(el("div", {"class": "problems"}, [problemLine(p)])); });
      return;
    }
    box.appendChild(el("p", {}, [el("span", {"class": "status status-" + r.outcome, "data-outcome": r.outcome}, [r.outcome])]));
    var fired = r.explanation.rules.some(function (rule) { return rule.fired; });
    box.appendChild(el("p", {"class": "why-summary"}, [fired || r.fallback ? r.explanation.summary :
      "No rule fired, so the default decided."]));
    var details = el("details", {"class": "why-missed"}, [el("summary", {}, [
      fired ? "Every rule, its parts and values" : "Why each rule did not fire"])]);
    r.explanation.rules.forEach(function (rule) {
      var parts = el("ol", {"class": "parts"});
      rule.conditions.forEach(function (c) { parts.appendChild(partLine(c)); });
      details.appendChild(el("div", {"class": "why-rule " + (rule.fired ? "fired" : "missed"), "data-rule": rule.id}, [
        el("p", {}, [rule.id + " (" + rule.outcome + "): " + (rule.fired ? "fired" : "did not fire")]), parts]));
    });
    box.appendChild(details);
  }

  var tryOut = document.getElementById("try-results");
  document.getElementById("try-button").addEventListener("click", function () {
    var inputs;
    try { inputs = JSON.parse(document.getElementById("samples").value); }
    catch (e) { tryOut.textContent = "The sample input is not JSON: " + e.message; return; }
    tryOut.textContent = "Trying…";
    post(root.dataset.try, {content: text.value, inputs: inputs}).then(function (res) {
      tryOut.textContent = "";
      if (res.status !== 200) {
        tryOut.appendChild(el("p", {"class": "flash error"}, [res.data.error.message]));
        var ul = el("ul", {"class": "problems"});
        res.data.error.details.forEach(function (p) { ul.appendChild(el("li", {}, [problemLine(p)])); });
        tryOut.appendChild(ul);
        return;
      }
      res.data.results.forEach(function (r, i) {
        var box = el("div", {"class": "card", "data-try-result": String(i)});
        box.appendChild(el("p", {}, ["Input " + (i + 1)]));
        var side = el("div", {"class": "try-side"});
        if (r.active !== undefined) {
          var now = el("div", {"data-side": "active"}, [el("h3", {}, [r.active ? "Active version " + r.active.version : "Active version"])]);
          if (r.active) { decisionWhy(now, r.active); }
          else { now.appendChild(el("p", {"class": "muted"}, ["No version is active yet."])); }
          side.appendChild(now);
        }
        var draft = el("div", {"data-side": "draft"}, [el("h3", {}, ["The draft"])]);
        decisionWhy(draft, r);
        side.appendChild(draft);
        box.appendChild(side);
        tryOut.appendChild(box);
      });
    });
  });

  // --- changes and impact
  var preview = document.getElementById("preview");
  document.getElementById("preview-button").addEventListener("click", function () {
    preview.textContent = "Comparing and replaying recent decisions…";
    post(root.dataset.preview, {content: text.value}).then(function (res) {
      preview.textContent = "";
      if (res.status !== 200) {
        preview.appendChild(el("p", {"class": "flash error"}, [res.data.error.message]));
        var ul = el("ul", {"class": "problems"});
        res.data.error.details.forEach(function (p) { ul.appendChild(el("li", {}, [problemLine(p)])); });
        preview.appendChild(ul);
        return;
      }
      var d = res.data, im = d.impact;
      var changes = el("ul", {"id": "preview-summary"});
      d.summary.forEach(function (s) { changes.appendChild(el("li", {}, [s])); });
      if (!d.summary.length) { changes.appendChild(el("li", {}, ["no changes"])); }
      preview.appendChild(changes);
      preview.appendChild(el("p", {"id": "preview-impact"}, [
        "Replayed " + im.replayed + " recent decisions: " + im.changed + " change outcome, " +
        im.unchanged + " keep it" + (im.input_rejected ? ", " + im.input_rejected + " refused by the inputs" : "") + "."]));
      Object.keys(im.transitions).forEach(function (t) {
        preview.appendChild(el("div", {}, [t.replace("->", " → ") + ": " + im.transitions[t]]));
      });
      im.examples.slice(0, 5).forEach(function (e) {
        preview.appendChild(el("div", {"class": "example"}, [el("code", {}, [JSON.stringify(e.input)]), " " + e.before + " → " + e.after]));
      });
    });
  });

  check();
})();
