// The console's only script: it makes the event, build-log and log panes live. Every page
// reads without it; a pane with data-stream follows its Server-Sent Events until "done".
"use strict";

function follow(pane) {
  var url = pane.getAttribute("data-stream");
  if (!url || pane.hasAttribute("data-done") || !window.EventSource) {
    return;
  }
  document.querySelectorAll(".nojs").forEach(function (el) { el.hidden = true; });
  var source = new EventSource(url);
  function append(text, cls) {
    var atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
    var span = document.createElement("span");
    if (cls) {
      span.className = cls;
    }
    span.textContent = text + "\n";
    pane.appendChild(span);
    if (atBottom) {
      pane.scrollTop = pane.scrollHeight;
    }
  }
  source.addEventListener("line", function (e) {
    append(JSON.parse(e.data).line);
  });
  source.addEventListener("done", function (e) {
    var line = JSON.parse(e.data).line;
    source.close();
    pane.setAttribute("data-done", "1");
    if (line) {
      append(line, "final " + (line.indexOf("OK") === 0 ? "ok" : "failed"));
    }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-stream]").forEach(follow);
});
