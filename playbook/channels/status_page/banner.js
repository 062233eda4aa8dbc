(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  var source = new URL("banner.json", script.src);
  // [background, border] per impact, as the status page's summary shows it.
  var COLOURS = { none: ["#eefaf1", "#1a7f37"], minor: ["#fff8c5", "#bf8700"], major: ["#fff4e5", "#d9480f"],
                  critical: ["#ffebe9", "#cf222e"] };

  function pick(data) {
    var lang = (document.documentElement.getAttribute("lang") || "").toLowerCase();
    var messages = data.messages || {};
    return messages[lang] || messages[lang.split("-")[0]] || messages[data["default"]] || [];
  }

  function show(data) {
    if (!data || !data.open) { return; }
    var items = pick(data);
    if (!items.length || document.getElementById("status-page-banner")) { return; }
    var bar = document.createElement("div");
    bar.id = "status-page-banner";
    bar.setAttribute("role", "status");
    var colours = COLOURS[data.impact] || COLOURS.major;
    bar.setAttribute("data-impact", data.impact || "major");
    bar.style.cssText = "background:" + colours[0] + ";color:#1f2328;border-bottom:3px solid " + colours[1] + ";" +
      "padding:10px 16px;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;text-align:center";
    items.forEach(function (item) {
      var line = document.createElement("p");
      line.style.margin = "0";
      line.lang = item.lang;
      var label = document.createElement("strong");
      label.textContent = item.label + " \u2014 ";
      line.appendChild(label);
      line.appendChild(document.createTextNode(item.title + " "));
      if (item.next_update) { line.appendChild(document.createTextNode("(" + item.next_update + ") ")); }
      if (/^https?:\/\//.test(item.url)) {
        var link = document.createElement("a");
        link.href = item.url;
        link.textContent = item.link_text;
        link.style.color = "#0550ae";
        line.appendChild(link);
      }
      bar.appendChild(line);
    });
    document.body.insertBefore(bar, document.body.firstChild);
  }

  fetch(source, { cache: "no-store" })
    .then(function (response) { return response.ok ? response.json() : null; })
    .then(function (data) {
      if (document.body) { show(data); }
      else { document.addEventListener("DOMContentLoaded", function () { show(data); }); }
    })
    .catch(function () {});
})();
