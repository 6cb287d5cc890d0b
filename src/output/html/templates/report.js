// Filtering and sorting for the findings tables. The page is complete
// without it; this only adds the controls. The address's hash carries the
// filter (#filter=sales&severity=high), so a filtered view can be shared.
(function () {
  "use strict";
  var controls = document.getElementById("controls");
  var filter = document.getElementById("filter");
  var minSeverity = document.getElementById("min-severity");
  var shownCount = document.getElementById("shown-count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.finding"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.rule"));
  var ranks = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
  var names = ["", "low", "medium", "high", "critical"];
  if (!controls) {
    return;
  }
  controls.hidden = false;

  function apply() {
    var query = filter.value.trim().toLowerCase();
    var min = Number(minSeverity.value) || 0;
    var shown = 0;
    rows.forEach(function (row) {
      var match = Number(row.getAttribute("data-rank")) >= min &&
        (query === "" || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !match;
      if (match) {
        shown += 1;
      }
    });
    sections.forEach(function (section) {
      var count = section.querySelector(".rule-count");
      var total = count.getAttribute("data-total");
      var visible = section.querySelectorAll("tr.finding:not([hidden])").length;
      count.textContent = String(visible) === total ? total : visible + " of " + total;
      section.hidden = visible === 0;
    });
    shownCount.textContent = String(shown);
  }

  function readHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    filter.value = params.get("filter") || "";
    var severity = (params.get("severity") || "").toLowerCase();
    minSeverity.value = String(ranks.hasOwnProperty(severity) ? ranks[severity] : 0);
    apply();
  }

  function writeHash() {
    var params = new URLSearchParams();
    if (filter.value.trim() !== "") {
      params.set("filter", filter.value.trim());
    }
    if (minSeverity.value !== "0") {
      params.set("severity", names[Number(minSeverity.value)]);
    }
    var hash = params.toString();
    history.replaceState(null, "", hash === "" ? window.location.pathname : "#" + hash);
  }

  function onInput() {
    apply();
    writeHash();
  }

  function sortValue(row, column, numeric) {
    var cell = row.cells[column];
    var value = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent;
    return numeric ? Number(value) : value.trim().toLowerCase();
  }

  function makeSortable(header) {
    var table = header.closest("table");
    var numeric = header.getAttribute("data-sort") === "number";
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = header.textContent;
    header.textContent = "";
    header.appendChild(button);
    button.addEventListener("click", function () {
      var descending = header.getAttribute("aria-sort") === "ascending";
      Array.prototype.forEach.call(table.querySelectorAll("th[aria-sort]"), function (other) {
        other.removeAttribute("aria-sort");
      });
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var column = header.cellIndex;
      var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = sortValue(a, column, numeric);
        var y = sortValue(b, column, numeric);
        var order = numeric ? x - y : x.localeCompare(y);
        return descending ? -order : order;
      });
      sorted.forEach(function (row) {
        body.appendChild(row);
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.findings-table th[data-sort]"), makeSortable);
  filter.addEventListener("input", onInput);
  minSeverity.addEventListener("change", onInput);
  window.addEventListener("hashchange", readHash);
  readHash();
})();
