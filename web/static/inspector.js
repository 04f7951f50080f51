/* The instance inspector's diagram: draws the instance's BPMN in the bpmn-js viewer and
   marks the elements that completed, are active, wait on a timer or failed.
   Data comes from the JSON at data-diagram-url (see web/instance_pages.py). */
(function () {
  "use strict";
  var root = document.getElementById("inspector");
  if (!root) { return; }
  var status = document.getElementById("inspector-status");
  var choice = document.getElementById("inspector-choice");
  var select = document.getElementById("inspector-process");

  function say(text) { status.textContent = text; }

  if (!window.BpmnJS) { say("The diagram viewer could not be loaded."); return; }
  var viewer = new window.BpmnJS({ container: "#inspector-canvas" });
  var states = [];
  var diagrams = [];

  function show(index) {
    var diagram = diagrams[index];
    root.removeAttribute("data-ready");
    return viewer.importXML(diagram.xml).then(function () {
      var canvas = viewer.get("canvas");
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport");
      var counts = [];
      states.forEach(function (state) {
        var marked = 0;
        (diagram[state] || []).forEach(function (id) {
          if (registry.get(id)) {
            canvas.addMarker(id, "inspector-" + state);
            marked += 1;
          }
        });
        if (marked) { counts.push(marked + " " + state); }
      });
      say("Diagram of " + diagram.process_id + " (" + diagram.file + "): " +
          (counts.length ? counts.join(", ") : "nothing marked") + ".");
      root.setAttribute("data-shown", diagram.process_id);
      root.setAttribute("data-ready", "1");
    }).catch(function (err) {
      say("The diagram could not be drawn: " + (err && err.message ? err.message : err));
      root.setAttribute("data-ready", "error");
    });
  }

  /* Open first the diagram that needs attention: a failure, else the innermost process
     with something active (a subprocess is listed after the process that calls it). */
  function preferred() {
    var i;
    for (i = 0; i < diagrams.length; i += 1) {
      if ((diagrams[i].errored || []).length) { return i; }
    }
    for (i = diagrams.length - 1; i >= 0; i -= 1) {
      if ((diagrams[i].active || []).length) { return i; }
    }
    return 0;
  }

  say("Loading the diagram…");
  fetch(root.getAttribute("data-diagram-url"), {
    credentials: "same-origin", headers: { "Accept": "application/json" }
  }).then(function (response) {
    if (!response.ok) { throw new Error("the server answered " + response.status); }
    return response.json();
  }).then(function (data) {
    states = data.states;
    diagrams = data.diagrams;
    if (!diagrams.length) { say("No diagram is stored for this instance."); return; }
    var start = preferred();
    if (diagrams.length > 1) {
      diagrams.forEach(function (diagram, index) {
        var option = document.createElement("option");
        option.value = String(index);
        option.textContent = diagram.process_id + " (" + diagram.file + ")";
        if (index === start) { option.selected = true; }
        select.appendChild(option);
      });
      select.addEventListener("change", function () { show(Number(select.value)); });
      choice.hidden = false;
    }
    return show(start);
  }).catch(function (err) {
    say("The diagram could not be loaded: " + err.message);
    root.setAttribute("data-ready", "error");
  });
}());
