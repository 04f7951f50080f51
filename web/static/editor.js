/* The process editor page (web/templates/editor.html): the bpmn-js modeler on the user's
 * draft, a properties sidebar for what this project uses (names, forms, instructions,
 * scripts, lanes, timers, conditions), validation with the problems marked on the
 * diagram, scenario tests, the difference against the current version and deploying.
 * All checking is done by the server (web/editor_pages.py); this file only edits and shows.
 */
(function () {
  "use strict";

  var root = document.getElementById("editor");
  if (!root || typeof BpmnJS === "undefined") { return; }

  var SPIFF = "spiffworkflow:";
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var urls = root.dataset;
  var files = {};          // name -> text (the draft as last loaded or edited here)
  var dirty = {};          // names changed here and not yet saved
  var current = null;      // the diagram shown
  var diagramDirty = false;
  var importing = false;
  var problems = [];       // the last validation's problems
  var marked = [];
  var textFile = null;
  var previewTimer = null;
  var modeler, moddle;

  var $ = function (id) { return document.getElementById(id); };
  var statusEl = $("status");

  function say(text) { statusEl.textContent = text; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "className") { node.className = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }

  function call(url, options) {
    options = options || {};
    var init = {method: options.method || "POST", credentials: "same-origin",
                headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}};
    if (options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.form) {
      init.body = options.form;
    }
    return fetch(url, init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        return {ok: response.ok, status: response.status, data: data};
      });
    });
  }

  function errorText(result) {
    var error = result.data && result.data.error;
    if (!error) { return "The server answered " + result.status + "."; }
    var lines = [error.message];
    Object.keys(error.fields || {}).forEach(function (key) {
      error.fields[key].forEach(function (message) { lines.push(key + ": " + message); });
    });
    return lines.join("\n");
  }

  var LONDON = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/London", weekday: "short", day: "2-digit", month: "short",
    year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"});

  function londonTime(iso) {  // as the pages show times: "Thu 24 Dec 2026, 14:30"
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return iso; }
    var p = {};
    LONDON.formatToParts(d).forEach(function (part) { p[part.type] = part.value; });
    return p.weekday + " " + p.day + " " + p.month + " " + p.year + ", " + p.hour + ":" +
      p.minute;
  }

  function isDiagram(name) { return /\.bpmn$/i.test(name); }

  // -- loading and saving the draft ----------------------------------------------------

  function loadDraft() {
    return call(urls.draftUrl, {method: "GET"}).then(function (result) {
      if (!result.ok) { throw new Error(errorText(result)); }
      files = result.data.files;
      fillSelects();
      return result.data;
    });
  }

  function fillSelects() {
    var select = $("file-select");
    var textSelect = $("text-file-select");
    select.textContent = "";
    textSelect.textContent = "";
    Object.keys(files).sort().forEach(function (name) {
      var option = el("option", {value: name, text: isDiagram(name) ? diagramTitle(name) : name});
      (isDiagram(name) ? select : textSelect).appendChild(option);
    });
    if (current && files[current] !== undefined) { select.value = current; }
    if (textFile && files[textFile] !== undefined) { textSelect.value = textFile; }
  }

  function diagramTitle(name) {  // "receipt_and_logging.bpmn – Receipt and logging"
    var doc = new DOMParser().parseFromString(files[name], "application/xml");
    var process = doc.getElementsByTagNameNS("http://www.omg.org/spec/BPMN/20100524/MODEL",
                                             "process")[0];
    var title = process && (process.getAttribute("name") || "").trim();
    return title ? name + " – " + title : name;
  }

  function captureDiagram() {
    if (!current || !diagramDirty) { return Promise.resolve(); }
    return modeler.saveXML({format: true}).then(function (result) {
      files[current] = result.xml;
      dirty[current] = true;
      diagramDirty = false;
    });
  }

  function captureText() {
    if (textFile && files[textFile] !== $("text-file").value) {
      files[textFile] = $("text-file").value;
      dirty[textFile] = true;
    }
  }

  function save() {
    captureText();
    return captureDiagram().then(function () {
      var changed = {};
      Object.keys(dirty).forEach(function (name) { changed[name] = files[name]; });
      if (!Object.keys(changed).length) { return true; }
      say("Saving…");
      return call(urls.saveUrl, {json: {changed: changed}}).then(function (result) {
        if (!result.ok) { say("Not saved: " + errorText(result)); return false; }
        dirty = {};
        say("Saved.");
        return true;
      });
    });
  }

  // -- the diagram -----------------------------------------------------------------------

  function openDiagram(name) {
    return captureDiagram().then(function () {
      current = name;
      $("file-select").value = name;
      importing = true;
      return modeler.importXML(files[name]);
    }).then(function (result) {
      importing = false;
      diagramDirty = false;
      modeler.get("canvas").zoom("fit-viewport", "auto");
      showProperties(null);
      markProblems();
      var warnings = (result && result.warnings) || [];
      say("Showing " + name + (warnings.length ? " (the editor could not read " +
          warnings.length + " part(s) of it)" : "") + ".");
    }).catch(function (err) {
      importing = false;
      say("This diagram cannot be shown: " + err.message);
    });
  }

  function markProblems() {
    var canvas = modeler.get("canvas");
    var overlays = modeler.get("overlays");
    var registry = modeler.get("elementRegistry");
    marked.forEach(function (id) {
      if (registry.get(id)) { canvas.removeMarker(id, "has-problem"); }
    });
    overlays.remove({type: "problem"});
    marked = [];
    problems.forEach(function (problem) {
      if (problem.file !== current || !problem.element_id) { return; }
      var element = registry.get(problem.element_id);
      if (!element) { return; }
      canvas.addMarker(element, "has-problem");
      marked.push(problem.element_id);
      if (element.waypoints) { return; }
      overlays.add(element, "problem", {
        position: {top: -10, right: 10},
        html: el("span", {className: "problem-badge", title: problem.message, text: "!"})
      });
    });
  }

  function focusElement(file, id) {
    var go = file === current ? Promise.resolve() : openDiagram(file);
    return go.then(function () {
      var element = id && modeler.get("elementRegistry").get(id);
      if (!element) { return; }
      modeler.get("canvas").scrollToElement(element);
      modeler.get("selection").select(element);
    });
  }

  // -- the properties sidebar ------------------------------------------------------------

  function extensionValues(bo) {
    return bo.extensionElements ? (bo.extensionElements.get("values") || []) : [];
  }

  function extension(bo, type) {
    return extensionValues(bo).filter(function (v) { return v.$type === SPIFF + type; })[0];
  }

  function ensureExtensions(bo) {
    if (!bo.extensionElements) {
      bo.extensionElements = moddle.create("bpmn:ExtensionElements", {values: []});
      bo.extensionElements.$parent = bo;
    }
    return bo.extensionElements;
  }

  function changed() { diagramDirty = true; }

  function setBodyExtension(bo, type, value) {
    var found = extension(bo, type);
    if (!value) {
      if (found) {
        var values = bo.extensionElements.get("values");
        values.splice(values.indexOf(found), 1);
      }
    } else if (found) {
      found.value = value;
    } else {
      var created = moddle.create(SPIFF + type, {value: value});
      created.$parent = ensureExtensions(bo);
      bo.extensionElements.get("values").push(created);
    }
    changed();
  }

  function property(bo, name) {
    var props = extension(bo, "Properties");
    var found = props && (props.get("properties") || []).filter(function (p) {
      return p.name === name; })[0];
    return found ? found.value || "" : "";
  }

  function setProperty(bo, name, value) {
    var props = extension(bo, "Properties");
    if (!props) {
      if (!value) { return; }
      props = moddle.create(SPIFF + "Properties", {properties: []});
      props.$parent = ensureExtensions(bo);
      bo.extensionElements.get("values").push(props);
    }
    var list = props.get("properties");
    var found = list.filter(function (p) { return p.name === name; })[0];
    if (!value) {
      if (found) { list.splice(list.indexOf(found), 1); }
    } else if (found) {
      found.value = value;
    } else {
      var created = moddle.create(SPIFF + "Property", {name: name, value: value});
      created.$parent = props;
      list.push(created);
    }
    changed();
  }

  var fieldCount = 0;

  function field(box, label, value, onInput, options) {
    options = options || {};
    var id = "prop-" + (++fieldCount);
    var input;
    if (options.choices) {
      input = el("select", {id: id});
      options.choices.forEach(function (choice) {
        var option = el("option", {value: choice[0], text: choice[1]});
        if (choice[0] === value) { option.selected = true; }
        input.appendChild(option);
      });
    } else if (options.multiline) {
      input = el("textarea", {id: id, rows: options.rows || 4, spellcheck: "false"});
      input.value = value || "";
    } else if (options.checkbox) {
      input = el("input", {id: id, type: "checkbox"});
      input.checked = !!value;
    } else {
      input = el("input", {id: id, type: "text"});
      input.value = value || "";
    }
    if (options.readOnly) { input.readOnly = true; input.disabled = !!options.choices; }
    if (options.name) { input.setAttribute("data-property", options.name); }
    var events = options.choices || options.checkbox ? ["change"] : ["input"];
    events.forEach(function (type) {
      input.addEventListener(type, function () {
        onInput(options.checkbox ? input.checked : input.value);
      });
    });
    var children = [el("label", {"for": id, text: label}), input];
    if (options.help) { children.push(el("span", {className: "hint", text: options.help})); }
    box.appendChild(el("p", {className: "field"}, children));
    return input;
  }

  function lanes() {  // lanes with no lanes inside them: the ones that name roles
    return modeler.get("elementRegistry").filter(function (e) {
      return e.type === "bpmn:Lane" && !(e.children || []).some(function (c) {
        return c.type === "bpmn:Lane"; });
    });
  }

  function laneOf(element) {
    var bo = element.businessObject;
    return lanes().filter(function (e) {
      return (e.businessObject.flowNodeRef || []).indexOf(bo) >= 0;
    })[0];
  }

  function moveToLane(element, lane) {
    // Moving the shape into the lane's band makes bpmn-js update the lanes' flowNodeRefs.
    var dy = Math.round(lane.y + lane.height / 2 - (element.y + element.height / 2));
    modeler.get("modeling").moveElements([element], {x: 0, y: dy}, element.parent);
  }

  function showProperties(element) {
    var box = $("properties");
    box.textContent = "";
    box.appendChild(el("h2", {id: "properties-title", text: "Properties"}));
    if (!element || element.type === "label" || element.type === "bpmn:Process" ||
        element.type === "bpmn:Collaboration") {
      box.appendChild(el("p", {className: "hint",
        text: "Select an element of the diagram to see and change its properties."}));
      return;
    }
    var bo = element.businessObject;
    var modeling = modeler.get("modeling");
    var type = bo.$type.replace("bpmn:", "");
    box.appendChild(el("p", {className: "element-kind", text: type + " · " + bo.id}));
    problems.filter(function (p) { return p.file === current && p.element_id === bo.id; })
      .forEach(function (p) {
        box.appendChild(el("p", {className: "problem", role: "alert", text: p.message}));
      });

    field(box, "Name", bo.name, function (value) {
      modeling.updateLabel(element, value);
    }, {name: "name"});

    var lane = laneOf(element);
    if (lane && !element.waypoints && type !== "BoundaryEvent") {
      var choices = lanes().map(function (l) {
        return [l.id, l.businessObject.name || l.id]; });
      field(box, "Lane (who does it)", lane.id, function (id) {
        var target = modeler.get("elementRegistry").get(id);
        if (target && target !== laneOf(element)) { moveToLane(element, target); }
      }, {choices: choices, name: "lane",
          help: "The role whose members get this task; the task moves into that lane."});
    }
    if (type === "Lane") {
      box.appendChild(el("p", {className: "hint", text: "A lane's name is a role: Staff, " +
        "Quality Manager, Operations Director, Complaint Owner, Information Security " +
        "Officer, Senior Management, Process Owner, Admin."}));
    }

    if (type === "UserTask" || type === "ManualTask") {
      field(box, "Form file (forms/…)", property(bo, "formJsonSchemaFilename"), function (v) {
        setProperty(bo, "formJsonSchemaFilename", v.trim());
      }, {name: "formJsonSchemaFilename", help: "A JSON Schema among the draft's forms."});
      field(box, "UI schema file", property(bo, "formUiSchemaFilename"), function (v) {
        setProperty(bo, "formUiSchemaFilename", v.trim());
      }, {name: "formUiSchemaFilename"});
      field(box, "Due at (expression)", property(bo, "dueAt"), function (v) {
        setProperty(bo, "dueAt", v.trim());
      }, {name: "dueAt", help: 'e.g. deadlines["acknowledge_by"]'});
      var instructions = extension(bo, "InstructionsForEndUser");
      field(box, "Instructions for the person doing it", instructions && instructions.value,
        function (v) { setBodyExtension(bo, "InstructionsForEndUser", v); },
        {multiline: true, rows: 6, name: "instructions"});
      var open = el("button", {type: "button", id: "edit-form", text: "Edit this form"});
      open.addEventListener("click", function () {
        var form = property(bo, "formJsonSchemaFilename");
        if (!form) { say("Name the form file first, e.g. " + bo.id + ".json."); return; }
        var name = "forms/" + form;
        if (files[name] === undefined) {  // a new form: start from an empty schema
          files[name] = JSON.stringify({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": bo.name || bo.id, "type": "object", "properties": {},
            "required": [], "additionalProperties": false}, null, 2) + "\n";
          dirty[name] = true;
          fillSelects();
          say("New form " + name + " added to the draft: describe its fields.");
        }
        openText(name);
      });
      box.appendChild(el("p", {}, [open]));
    }
    if (type === "ScriptTask") {
      field(box, "Script (Python)", bo.script, function (v) {
        modeling.updateProperties(element, {script: v});
      }, {multiline: true, rows: 10, name: "script",
          help: "Helpers: add_business_days(instant, n), add_hours, add_days, now(), …"});
    }
    if (type === "BusinessRuleTask") {
      var decision = extension(bo, "CalledDecisionId");
      field(box, "Decision (DMN decision id)", decision && decision.value, function (v) {
        setBodyExtension(bo, "CalledDecisionId", v.trim());
      }, {name: "calledDecisionId"});
    }
    if (/Task$/.test(type) || type === "CallActivity" || type === "SubProcess") {
      var pre = extension(bo, "PreScript");
      var post = extension(bo, "PostScript");
      field(box, "Script before (pre-script)", pre && pre.value, function (v) {
        setBodyExtension(bo, "PreScript", v);
      }, {multiline: true, name: "preScript"});
      field(box, "Script after (post-script)", post && post.value, function (v) {
        setBodyExtension(bo, "PostScript", v);
      }, {multiline: true, name: "postScript"});
      var addTimer = el("button", {type: "button", id: "add-timer", text: "Add a timer to this task"});
      addTimer.addEventListener("click", function () { addTimerTo(element); });
      box.appendChild(el("p", {}, [addTimer]));
    }
    if (type === "CallActivity") {
      field(box, "Calls process", bo.calledElement, function (v) {
        modeling.updateProperties(element, {calledElement: v.trim()});
      }, {name: "calledElement"});
    }

    var timer = (bo.eventDefinitions || []).filter(function (d) {
      return d.$type === "bpmn:TimerEventDefinition"; })[0];
    if (timer) { timerFields(box, element, timer); }
    if (type === "BoundaryEvent") {
      field(box, "Interrupting (cancels the task when it fires)", bo.cancelActivity !== false,
        function (checked) { modeling.updateProperties(element, {cancelActivity: checked}); },
        {checkbox: true, name: "cancelActivity"});
    }

    if (type === "SequenceFlow") {
      var condition = bo.conditionExpression ? bo.conditionExpression.body : "";
      field(box, "Condition (Python expression on the case data)", condition, function (v) {
        modeling.updateProperties(element, {conditionExpression: v.trim() ?
          moddle.create("bpmn:FormalExpression", {body: v}) : undefined});
      }, {multiline: true, rows: 3, name: "condition",
          help: "Leave empty for the gateway's default way out."});
      var source = element.source;
      if (source && /^bpmn:(Exclusive|Inclusive)Gateway$/.test(source.type)) {
        field(box, "This is the default way out of its gateway", source.businessObject.default === bo,
          function (checked) {
            modeling.updateProperties(source, {"default": checked ? bo : undefined});
          }, {checkbox: true, name: "isDefault"});
      }
    }
    if (type === "ExclusiveGateway" || type === "InclusiveGateway") {
      var outgoing = bo.outgoing || [];
      var choices = [["", "(none)"]].concat(outgoing.map(function (flow) {
        return [flow.id, (flow.name ? flow.name + " – " : "") + flow.id]; }));
      field(box, "Default way out", bo.default ? bo.default.id : "", function (v) {
        var flow = outgoing.filter(function (f) { return f.id === v; })[0];
        modeling.updateProperties(element, {"default": flow || undefined});
      }, {choices: choices, name: "default"});
    }
  }

  function timerFields(box, element, timer) {
    var kinds = ["timeDate", "timeDuration", "timeCycle"];
    var kind = kinds.filter(function (k) { return timer[k]; })[0] || "timeDuration";
    var expression = timer[kind] ? timer[kind].body : "";
    var kindInput = field(box, "Timer kind", kind, function () {}, {name: "timerKind", choices: [
      ["timeDate", "at a date and time (timeDate)"],
      ["timeDuration", "after a duration (timeDuration)"],
      ["timeCycle", "repeatedly (timeCycle)"]]});
    var exprInput = field(box, "Timer expression (Python)", expression, function () {},
      {multiline: true, rows: 2, name: "timer",
       help: 'e.g. "P5D" (5 days, in quotes) or add_business_days(received_at, 3)'});
    function apply() {
      kinds.forEach(function (k) { timer[k] = undefined; });
      if (exprInput.value.trim()) {
        var expr = moddle.create("bpmn:FormalExpression", {body: exprInput.value});
        expr.$parent = timer;
        timer[kindInput.value] = expr;
      }
      changed();
    }
    kindInput.addEventListener("change", apply);
    exprInput.addEventListener("input", apply);
  }

  function addTimerTo(task) {
    var factory = modeler.get("elementFactory");
    var modeling = modeler.get("modeling");
    var shape = factory.createShape({type: "bpmn:BoundaryEvent",
                                     eventDefinitionType: "bpmn:TimerEventDefinition"});
    var position = {x: task.x + task.width - 18, y: task.y + task.height};
    var created = modeling.createShape(shape, position, task, {attach: true});
    modeling.updateProperties(created, {cancelActivity: false, name: "Timer"});
    modeler.get("selection").select(created);
    say("A non-interrupting timer was added: give it an expression.");
  }

  // -- validation ------------------------------------------------------------------------

  function showProblems(list) {
    problems = list;
    var section = $("problems-section");
    var ul = $("problems");
    section.hidden = false;
    ul.textContent = "";
    $("problems-summary").textContent = list.length ?
      list.length + " problem(s): the draft cannot be deployed until they are fixed." :
      "No problems: the draft passes the checks of deployment.";
    $("problems-summary").className = list.length ? "problem" : "ok";
    list.forEach(function (problem) {
      var item = el("li", {"data-element-id": problem.element_id || "", "data-file": problem.file});
      var where = problem.file + (problem.line ? ", line " + problem.line : "");
      if (problem.element_id && isDiagram(problem.file)) {
        var show = el("button", {type: "button", className: "link", text: where});
        show.addEventListener("click", function () {
          focusElement(problem.file, problem.element_id);
        });
        item.appendChild(show);
      } else {
        item.appendChild(el("span", {className: "where", text: where}));
      }
      item.appendChild(document.createTextNode(": " + problem.message));
      ul.appendChild(item);
    });
    markProblems();
    var selected = modeler.get("selection").get()[0];
    if (selected) { showProperties(selected); }
  }

  function validate() {
    return save().then(function (saved) {
      if (!saved) { return; }
      say("Validating…");
      return call(urls.validateUrl).then(function (result) {
        if (!result.ok) { say(errorText(result)); return; }
        showProblems(result.data.problems);
        say(result.data.ok ? "Validation passed." : "Validation failed.");
        return result.data.ok;
      });
    });
  }

  // -- scenarios -------------------------------------------------------------------------

  function runScenarios() {
    return save().then(function (saved) {
      if (!saved) { return; }
      say("Running the scenario tests…");
      return call(urls.scenariosUrl).then(function (result) {
        if (!result.ok) { say(errorText(result)); return; }
        showScenarios(result.data);
        say("Scenario tests: " + result.data.summary + ".");
      });
    });
  }

  function showScenarios(data) {
    $("scenarios-section").hidden = false;
    $("scenarios-summary").textContent = data.summary;
    $("scenarios-summary").className = data.ok ? "ok" : "problem";
    if (data.problems && data.problems.length) { showProblems(data.problems); }
    var ul = $("scenarios");
    ul.textContent = "";
    var changes = [];
    data.results.forEach(function (r) {
      var item = el("li", {className: r.passed ? "pass" : "fail", "data-file": r.file}, [
        el("strong", {text: r.passed ? "PASS" : "FAIL"}),
        document.createTextNode(" " + r.name + " "),
        el("span", {className: "hint", text: "(" + r.file + ")"})
      ]);
      var deadlineLines = {};
      (r.deadline_changes || []).forEach(function (c) {
        changes.push({file: r.file, change: c});
        deadlineLines["expect.deadlines." + c.deadline] = c;
      });
      if (r.failures.length) {
        var list = el("ul");
        r.failures.forEach(function (failure) {
          var match = /^expect\.deadlines\.(\w+):/.exec(failure);
          var c = match && deadlineLines["expect.deadlines." + match[1]];
          if (c) {
            var accept = el("button", {type: "button", className: "accept-deadline",
              text: "Expect the new deadline in this scenario"});
            accept.addEventListener("click", function () {
              acceptDeadlines([{file: r.file, change: c}]);
            });
            list.appendChild(el("li", {className: "deadline-change"}, [
              document.createTextNode("Deadline “" + c.deadline + "”: the scenario expects " +
                londonTime(c.expected) + "; the draft gives " + londonTime(c.got) + ". "),
              accept]));
          } else {
            list.appendChild(el("li", {}, [el("pre", {text: failure})]));
          }
        });
        item.appendChild(list);
      }
      ul.appendChild(item);
    });
    if (changes.length > 1) {
      var all = el("button", {type: "button", id: "accept-all-deadlines",
        text: "The new deadlines are intended: expect them in all " + changes.length +
              " scenarios"});
      all.addEventListener("click", function () { acceptDeadlines(changes); });
      ul.appendChild(el("li", {className: "accept-all"}, [all]));
    }
  }

  function acceptDeadlines(changes) {
    var chain = save();
    changes.forEach(function (item) {
      chain = chain.then(function () {
        return call(urls.acceptUrl, {json: {file: item.file, deadline: item.change.deadline,
                                            value: item.change.got}}).then(function (result) {
          if (!result.ok) { throw new Error(errorText(result)); }
        });
      });
    });
    return chain.then(loadDraft).then(function () {
      if (textFile) { $("text-file").value = files[textFile] || ""; }
      return runScenarios();
    }).catch(function (err) { say(err.message); });
  }

  // -- difference and deploy -------------------------------------------------------------

  function review() {
    return save().then(function (saved) {
      if (!saved) { return; }
      $("deploy-result").textContent = "";
      return call(urls.diffUrl, {method: "GET"}).then(function (result) {
        if (!result.ok) { say(errorText(result)); return; }
        showDiff(result.data);
        $("review-section").hidden = false;
        $("change-note").focus();
      });
    });
  }

  function showDiff(data) {
    var box = $("diff");
    box.textContent = "";
    if (!data.changes.length) {
      box.appendChild(el("p", {text: "The draft is the same as version " +
        data.against_version + "."}));
      return;
    }
    box.appendChild(el("p", {text: data.changes.length + " change(s) against version " +
      data.against_version + ":"}));
    var table = el("table", {className: "diff"});
    table.appendChild(el("thead", {}, [el("tr", {}, ["What", "Change", "Element", "File",
      "Details"].map(function (h) { return el("th", {scope: "col", text: h}); }))]));
    var body = el("tbody");
    data.changes.forEach(function (c) {
      var details = el("ul");
      c.details.forEach(function (d) { details.appendChild(el("li", {}, [el("code", {text: d})])); });
      body.appendChild(el("tr", {className: "change-" + c.change,
                                 "data-element-id": c.element_id || ""}, [
        el("td", {text: c.category}), el("td", {text: c.change}),
        el("td", {text: c.name + (c.element_id && c.element_id !== c.name ?
                                  " (" + c.element_id + ")" : "")}),
        el("td", {text: c.file}), el("td", {}, [details])]));
    });
    table.appendChild(body);
    box.appendChild(table);
  }

  function deploy(event) {
    event.preventDefault();
    var note = $("change-note").value;
    var out = $("deploy-result");
    out.textContent = "";
    save().then(function (saved) {
      if (!saved) { return; }
      say("Deploying…");
      return call(urls.deployUrl, {json: {change_note: note}}).then(function (result) {
        if (!result.ok) {
          out.className = "problem";
          out.appendChild(el("pre", {text: "Not deployed: " + errorText(result)}));
          say("Not deployed.");
          return;
        }
        out.className = "ok";
        out.appendChild(el("p", {text: result.data.message + ". New cases start on the " +
          "new version; running cases continue on theirs. Your draft is closed."}));
        out.appendChild(el("p", {}, [el("a", {href: urls.definitionUrl,
          text: "See the versions of this process"})]));
        say("Deployed.");
        root.querySelectorAll(".toolbar button, #deploy").forEach(function (b) {
          b.disabled = true; });
      });
    });
  }

  // -- forms and other files -------------------------------------------------------------

  function openText(name) {
    captureText();
    textFile = name;
    $("text-file-select").value = name;
    $("text-file").value = files[name] || "";
    preview();
    $("text-file").focus();
  }

  function formPair(name) {
    if (!/^forms\/.*\.json$/i.test(name)) { return null; }
    if (/\.ui\.json$/i.test(name)) {
      return {schema: name.replace(/\.ui\.json$/i, ".json"), ui: name};
    }
    return {schema: name, ui: name.replace(/\.json$/i, ".ui.json")};
  }

  function preview() {
    var pair = formPair(textFile);
    $("form-preview-box").hidden = !pair;
    if (!pair) { return; }
    clearTimeout(previewTimer);
    previewTimer = setTimeout(function () {
      var text = $("text-file").value;
      var schema = pair.schema === textFile ? text : files[pair.schema] || "{}";
      var ui = pair.ui === textFile ? text : files[pair.ui] || "";
      call(urls.previewUrl, {json: {schema: schema, ui_schema: ui}}).then(function (result) {
        var problemsList = $("form-preview-problems");
        problemsList.textContent = "";
        if (!result.ok) { problemsList.appendChild(el("li", {text: errorText(result)})); return; }
        result.data.problems.forEach(function (p) {
          problemsList.appendChild(el("li", {text: p}));
        });
        // HTML rendered by the server's own form renderer (web/form_render.py), escaped there.
        var doc = new DOMParser().parseFromString(result.data.html, "text/html");
        var target = $("form-preview");
        target.textContent = "";
        Array.prototype.slice.call(doc.body.childNodes).forEach(function (node) {
          target.appendChild(document.importNode(node, true));
        });
        target.querySelectorAll("input, select, textarea, button").forEach(function (c) {
          c.setAttribute("tabindex", "-1");
        });
      });
    }, 250);
  }

  // -- import a file from another tool ---------------------------------------------------

  function importFile(event) {
    event.preventDefault();
    var input = $("import-file");
    if (!input.files.length) { say("Choose a file first."); return; }
    var form = new FormData();
    form.append("file", input.files[0]);
    save().then(function () {
      say("Adding the file…");
      return call(urls.importUrl, {form: form});
    }).then(function (result) {
      if (!result.ok) { say("Not added: " + errorText(result)); return; }
      var name = result.data.imported;
      return loadDraft().then(function () {
        return validate();
      }).then(function () {
        if (isDiagram(name)) { return openDiagram(name); }
        openText(name);
      });
    });
  }

  function removeShown() {
    if (!current) { return; }
    var name = current;
    if (!window.confirm("Remove " + name + " from your draft?")) { return; }
    diagramDirty = false;
    delete dirty[name];
    save().then(function () {
      return call(urls.saveUrl, {json: {changed: {}, removed: [name]}});
    }).then(function (result) {
      if (!result.ok) { say(errorText(result)); return; }
      current = null;
      return loadDraft().then(function () {
        var first = Object.keys(files).filter(isDiagram).sort()[0];
        return (first ? openDiagram(first) : Promise.resolve()).then(function () {
          say(name + " was removed from the draft.");
        });
      });
    });
  }

  // -- start -----------------------------------------------------------------------------

  fetch(urls.moddleUrl, {credentials: "same-origin"}).then(function (r) { return r.json(); })
    .then(function (descriptor) {
      modeler = new BpmnJS({container: "#canvas",
                            moddleExtensions: {spiffworkflow: descriptor}});
      moddle = modeler.get("moddle");
      var bus = modeler.get("eventBus");
      bus.on("commandStack.changed", function () { if (!importing) { changed(); } });
      bus.on("selection.changed", function (e) { showProperties(e.newSelection[0] || null); });
      return loadDraft();
    }).then(function (draft) {
      var diagrams = Object.keys(files).filter(isDiagram).sort();
      var main = draft.process_id + ".bpmn";
      root.setAttribute("data-ready", "true");
      return openDiagram(diagrams.indexOf(main) >= 0 ? main : diagrams[0]);
    }).then(function () {
      var first = Object.keys(files).filter(function (n) { return !isDiagram(n); }).sort()[0];
      if (first) { openText(first); }
      root.setAttribute("data-loaded", "true");
    }).catch(function (err) { say("The editor could not start: " + err.message); });

  $("file-select").addEventListener("change", function () { openDiagram(this.value); });
  $("text-file-select").addEventListener("change", function () { openText(this.value); });
  $("text-file").addEventListener("input", preview);
  $("save").addEventListener("click", save);
  $("save-text").addEventListener("click", save);
  $("validate").addEventListener("click", validate);
  $("run-scenarios").addEventListener("click", runScenarios);
  $("review").addEventListener("click", review);
  $("deploy-form").addEventListener("submit", deploy);
  $("import-form").addEventListener("submit", importFile);
  $("remove-file").addEventListener("click", removeShown);
  window.addEventListener("beforeunload", function (event) {
    if (diagramDirty || Object.keys(dirty).length) { event.preventDefault(); }
  });
}());
