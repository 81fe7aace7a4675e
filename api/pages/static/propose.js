// The editor: the thresholds form and the YAML kept in step both ways (the server writes
// numbers into the file with a YAML library that keeps comments and alignment), check as
// you type with each problem's line and a click to it, try, preview, and the draft kept in
// this browser until it is proposed. The YAML is edited in CodeMirror 5 (vendor/codemirror);
// without it the plain text box still works.
(function () {
  "use strict";
  var root = document.getElementById("editor");
  if (!root) { return; }
  var area = document.getElementById("content");
  var csrf = root.dataset.csrf;
  var note = document.getElementById("note");
  var effective = document.getElementById("effective_at");
  var proposeButton = document.getElementById("propose-button");
  var blockedNote = document.getElementById("propose-blocked");
  var initialText = area.value;
  var cm = window.CodeMirror ? window.CodeMirror.fromTextArea(area, {
    lineNumbers: true, mode: "yaml", indentUnit: 2, tabSize: 2, indentWithTabs: false,
    viewportMargin: 40, extraKeys: {Tab: "insertSoftTab"}
  }) : null;

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
    }).then(function (r) {
      if (r.status === 401) { sessionEnded(); }
      return r.json().then(function (data) { return {status: r.status, data: data}; });
    });
  }

  // --- the text, whichever box holds it
  function getText() { return cm ? cm.getValue() : area.value; }
  function setText(next) {
    if (!cm) { area.value = next; changed(); return; }
    var now = cm.getValue();
    if (now === next) { return; }
    // Replace only the part that differs, so the cursor, scroll and undo stay put.
    var start = 0, endNow = now.length, endNext = next.length;
    while (start < endNow && start < endNext && now[start] === next[start]) { start++; }
    while (endNow > start && endNext > start && now[endNow - 1] === next[endNext - 1]) {
      endNow--; endNext--;
    }
    cm.replaceRange(next.slice(start, endNext), cm.posFromIndex(start), cm.posFromIndex(endNow));
  }
  function goTo(line, column) {
    if (!cm) { area.focus(); return; }
    var pos = {line: Math.max(0, line - 1), ch: Math.max(0, (column || 1) - 1)};
    cm.setCursor(pos);
    cm.scrollIntoView(pos, 120);
    cm.focus();
  }
  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-goto-line]") : null;
    if (target) { goTo(Number(target.dataset.gotoLine), Number(target.dataset.gotoColumn || 1)); }
  });
  function gotoButton(label, line, column) {
    var attrs = {"type": "button", "class": "goto", "data-goto-line": String(line)};
    if (column) { attrs["data-goto-column"] = String(column); }
    return el("button", attrs, [label]);
  }

  // --- Propose is off while a problem stands
  var checkOk = true, fieldProblems = {};
  function updatePropose() {
    var fields = Object.keys(fieldProblems).filter(function (k) { return fieldProblems[k]; });
    var blocked = !checkOk || fields.length > 0;
    proposeButton.disabled = blocked;
    blockedNote.textContent = blocked ? "Fix the problems shown first; Propose is off until then." : "";
  }

  // --- thresholds form -> YAML, written by the server through a YAML library
  var thresholdInputs = Array.prototype.slice.call(document.querySelectorAll("[data-threshold]"));
  var pendingValues = {}, thresholdTimer = null;
  function showFieldProblem(key, message) {
    var input = document.querySelector("[data-threshold='" + key + "']");
    var slot = document.getElementById("threshold-" + key + "-problem");
    fieldProblems[key] = message;
    if (input) { input.setAttribute("aria-invalid", message ? "true" : "false"); }
    if (slot) { slot.textContent = message; }
    updatePropose();
  }
  function writeThresholds() {
    var values = pendingValues, sent = getText();
    pendingValues = {};
    post(root.dataset.thresholds, {content: sent, values: values}).then(function (res) {
      if (res.status !== 200) { showCheckError(res); return; }
      if (getText() !== sent) {  // the file changed meanwhile: write again on the new text
        Object.keys(values).forEach(function (k) { if (!(k in pendingValues)) { pendingValues[k] = values[k]; } });
        writeThresholds();
        return;
      }
      var refused = {};
      res.data.problems.forEach(function (p) { refused[p.place.replace(/^thresholds\./, "")] = p.message; });
      Object.keys(values).forEach(function (k) { showFieldProblem(k, refused[k] || ""); });
      setText(res.data.content);
    }).catch(function () { status.textContent = "The server could not be reached."; status.className = "flash error"; });
  }
  thresholdInputs.forEach(function (input) {
    var kind = input.tagName === "SELECT" ? "change" : "input";
    input.addEventListener(kind, function () {
      pendingValues[input.dataset.threshold] = input.value;
      clearTimeout(thresholdTimer);
      thresholdTimer = setTimeout(writeThresholds, 250);
    });
  });
  // --- YAML -> thresholds form (the check reads them)
  function showThresholds(values) {
    if (!values) { return; }
    thresholdInputs.forEach(function (input) {
      var key = input.dataset.threshold;
      if (!(key in values) || input === document.activeElement || key in pendingValues) { return; }
      var value = values[key];
      var same = input.dataset.kind === "number" ? input.value.trim() !== "" && Number(input.value) === value
        : input.value === String(value);
      if (!same) { input.value = String(value); }
      showFieldProblem(key, "");
    });
  }

  // --- check as you type
  var checkTimer = null, seq = 0, marked = [];
  var status = document.getElementById("check-status");
  var problems = document.getElementById("problems");
  var testsSummary = document.getElementById("tests-summary");
  function scheduleCheck() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(check, 500);
  }
  function markLines(lines) {
    if (!cm) { return; }
    marked.forEach(function (h) { cm.removeLineClass(h, "background", "line-problem"); });
    marked = lines.map(function (n) { return cm.addLineClass(n - 1, "background", "line-problem"); });
  }
  function showCheckError(res) {
    if (res.status === 401) { status.textContent = "Not checked: your session has ended."; }
    else { status.textContent = res.data && res.data.error ? res.data.error.message : "The check failed."; }
    status.className = "flash error";
  }
  function problemItem(p) {
    var where = p.where || p.place || "the file";
    var head = p.line ? gotoButton(where, p.line, p.column) : el("span", {}, [where]);
    return el("li", {}, [head, ": " + p.message]);
  }
  function testItem(t) {
    var head = t.line ? gotoButton("test '" + t.name + "', line " + t.line, t.line) : el("span", {}, ["test '" + t.name + "'"]);
    return el("li", {}, [head, " fails: " + t.failures.join("; ")]);
  }
  function showCheck(d) {
    problems.textContent = "";
    testsSummary.textContent = "";
    d.problems.forEach(function (p) { problems.appendChild(problemItem(p)); });
    var failed = d.tests.filter(function (t) { return !t.passed; });
    failed.forEach(function (t) { problems.appendChild(testItem(t)); });
    markLines(d.problems.concat(failed).map(function (p) { return p.line; }).filter(Boolean));
    if (d.tests.length) {
      testsSummary.textContent = (d.tests.length - failed.length) + " of " + d.tests.length + " embedded tests pass.";
    }
    var count = d.problems.length + failed.length;
    status.textContent = d.ok ? "No problems: the draft can be proposed."
      : count + " problem" + (count === 1 ? "" : "s") + " (click one to go to its line):";
    status.className = d.ok ? "flash ok" : "flash error";
    checkOk = d.ok;
    updatePropose();
    showThresholds(d.thresholds);
  }
  // A check the server could not answer (no connection, or a 5xx) is tried again by itself
  // a few seconds later, so a passing blip never leaves a stale error on the page.
  var RETRY_MS = 3000;
  function checkAgainSoon(mine, message) {
    var said = message ? message.replace(/\.?\s*$/, ".") : "The server could not be reached.";
    status.textContent = said + " Checking again in a few seconds…";
    status.className = "flash error";
    checkTimer = setTimeout(function () { if (mine === seq) { check(); } }, RETRY_MS);
  }
  function check() {
    var mine = ++seq;
    status.textContent = "Checking…";
    status.className = "muted";
    post(root.dataset.check, {content: getText()}).then(function (res) {
      if (mine !== seq) { return; }
      if (res.status >= 500) { checkAgainSoon(mine, res.data && res.data.error ? res.data.error.message : ""); return; }
      if (res.status !== 200) { showCheckError(res); return; }
      showCheck(res.data);
    }).catch(function () {
      if (mine === seq) { checkAgainSoon(mine, ""); }
    });
  }

  // --- the draft, kept in this browser until it is proposed
  var draftKey = "rules-service.draft." + root.dataset.name, saveTimer = null;
  function saveDraft() {
    try {
      if (getText() === initialText && !note.value && !effective.value) { localStorage.removeItem(draftKey); return; }
      localStorage.setItem(draftKey, JSON.stringify({content: getText(), note: note.value,
        effective_at: effective.value, saved_at: new Date().toISOString()}));
    } catch (e) { /* storage full or off: the page still works */ }
  }
  function changed() {
    scheduleCheck();
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveDraft, 300);
  }
  function restoreDraft() {
    var stored = null;
    try { stored = JSON.parse(localStorage.getItem(draftKey) || "null"); } catch (e) { stored = null; }
    if (!stored || typeof stored.content !== "string") { return; }
    if (root.dataset.refused) { return; }  // the page shows what was just sent
    if (stored.content === initialText && !stored.note && !stored.effective_at) { return; }
    setText(stored.content);
    note.value = stored.note || "";
    effective.value = stored.effective_at || "";
    var when = new Date(stored.saved_at);
    document.getElementById("draft-restored-text").textContent =
      "Your unsent draft" + (isNaN(when) ? "" : " from " + when.toLocaleString()) +
      " was restored (the file" + (stored.note ? ", the note" : "") + (stored.effective_at ? ", the time" : "") + ").";
    document.getElementById("draft-restored").hidden = false;
  }
  document.getElementById("draft-discard").addEventListener("click", function () {
    try { localStorage.removeItem(draftKey); } catch (e) { /* nothing kept */ }
    setText(initialText);
    note.value = "";
    effective.value = "";
    document.getElementById("draft-restored").hidden = true;
  });
  function sessionEnded() {
    saveDraft();
    document.getElementById("session-ended").hidden = false;
  }
  if (cm) { cm.on("changes", changed); } else { area.addEventListener("input", changed); }
  note.addEventListener("input", changed);
  effective.addEventListener("input", changed);
  document.getElementById("propose-form").addEventListener("submit", function () {
    if (cm) { cm.save(); }
    saveDraft();
  });

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
      r.problems.forEach(function (p) { box.appendChild(el("div", {"class": "problems"}, [(p.place ? p.place + ": " : "") + p.message])); });
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

  // --- try on sample inputs
  function refusal(box, res) {
    box.appendChild(el("p", {"class": "flash error"}, [res.data.error.message]));
    var ul = el("ul", {"class": "problems"});
    res.data.error.details.forEach(function (p) { ul.appendChild(problemItem(p)); });
    box.appendChild(ul);
  }
  var tryOut = document.getElementById("try-results");
  document.getElementById("try-button").addEventListener("click", function () {
    var inputs;
    try { inputs = JSON.parse(document.getElementById("samples").value); }
    catch (e) { tryOut.textContent = "The sample input is not JSON: " + e.message; return; }
    tryOut.textContent = "Trying…";
    post(root.dataset.try, {content: getText(), inputs: inputs}).then(function (res) {
      tryOut.textContent = "";
      if (res.status !== 200) { refusal(tryOut, res); return; }
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
    post(root.dataset.preview, {content: getText()}).then(function (res) {
      preview.textContent = "";
      if (res.status !== 200) { refusal(preview, res); return; }
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

  restoreDraft();
  saveDraft();
  check();
})();
