// Paging, filtering and sorting for the findings tables. The page reads
// without it (each rule's most severe findings are HTML rows); this adds
// the controls and pages through the findings embedded as JSON
// (#groupwarden-findings). Rows are built with textContent, never as
// markup. The address's hash carries the filter
// (#filter=sales&severity=high), so a filtered view can be shared.
(function () {
  "use strict";
  var PAGE_ROWS = 25;
  var controls = document.getElementById("controls");
  var dataNode = document.getElementById("groupwarden-findings");
  if (!controls || !dataNode) {
    return;
  }
  var data = JSON.parse(dataNode.textContent);
  var strings = data.strings;
  var filter = document.getElementById("filter");
  var minSeverity = document.getElementById("min-severity");
  var shownCount = document.getElementById("shown-count");
  var ranks = { info: 0, low: 1, medium: 2, high: 3, critical: 4 };
  var names = ["", "low", "medium", "high", "critical"];
  var columns = data.columns;

  function text(index) {
    return index === null ? "" : strings[index];
  }

  // One entry per kept finding, with its text lowercased once for the filter.
  function entry(row, order) {
    var status = row[6] === null ? null : data.statuses[row[6]];
    var evidence = [];
    var words = [text(row[1]), text(row[2]), text(row[3])];
    for (var i = 0; i < row[4].length; i += 2) {
      evidence.push([strings[row[4][i]], strings[row[4][i + 1]]]);
      words.push(strings[row[4][i]], strings[row[4][i + 1]]);
    }
    if (status) {
      words.push(status[1]);
    }
    words.push(text(row[7]));
    return {
      order: order,
      rank: row[0],
      group: text(row[1]),
      owner: row[2] === null ? null : strings[row[2]],
      message: text(row[3]),
      evidence: evidence,
      line: row[5],
      status: status,
      firstSeen: text(row[7]),
      key: text(row[8]),
      search: words.join("\u0001").toLowerCase()
    };
  }

  var views = [];
  data.rules.forEach(function (rule) {
    var section = document.getElementById("rule-" + rule.id);
    if (!section) {
      return;
    }
    var rows = rule.rows.map(entry);
    var pager = section.querySelector(".pager");
    var note = section.querySelector("[data-rule-note]");
    views.push({
      total: rule.total,
      section: section,
      body: section.querySelector("tbody"),
      count: section.querySelector(".rule-count"),
      pager: pager,
      pageStatus: pager.querySelector(".page-status"),
      previous: pager.querySelector("[data-page=prev]"),
      next: pager.querySelector("[data-page=next]"),
      note: note,
      rows: rows,
      matches: rows,
      page: 0
    });
  });

  function cell(label, className) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (className) {
      td.className = className;
    }
    return td;
  }

  function span(className, content) {
    var element = document.createElement("span");
    element.className = className;
    element.textContent = content;
    return element;
  }

  function badge(className, icon, label) {
    var element = document.createElement("span");
    element.className = className;
    var mark = span("icon", icon);
    mark.setAttribute("aria-hidden", "true");
    element.appendChild(mark);
    element.appendChild(document.createTextNode(" " + label));
    return element;
  }

  function rowElement(item) {
    var severity = data.severities[item.rank];
    var tr = document.createElement("tr");
    tr.className = "finding sev-row-" + severity[0];
    tr.setAttribute("data-rank", String(item.rank));
    tr.setAttribute("data-key", item.key);
    var td = cell("Severity");
    td.appendChild(badge("badge sev-" + severity[0], severity[2], severity[1]));
    tr.appendChild(td);
    td = cell("Group", "group");
    td.textContent = item.group;
    if (item.line !== null) {
      td.appendChild(document.createTextNode(" "));
      td.appendChild(span("line", "line " + item.line));
    }
    tr.appendChild(td);
    td = cell("Owner", "owner");
    if (item.owner === null) {
      td.appendChild(span("none", "no owner"));
    } else {
      td.textContent = item.owner;
    }
    tr.appendChild(td);
    td = cell("Message");
    td.textContent = item.message;
    tr.appendChild(td);
    td = cell("Evidence");
    if (item.evidence.length) {
      var list = document.createElement("ul");
      list.className = "evidence";
      item.evidence.forEach(function (pair) {
        var li = document.createElement("li");
        li.appendChild(span("name", pair[0]));
        li.appendChild(document.createTextNode(" " + pair[1]));
        list.appendChild(li);
      });
      td.appendChild(list);
    }
    tr.appendChild(td);
    if (columns.status) {
      td = cell("Status");
      if (item.status) {
        td.appendChild(badge("status status-" + item.status[0], item.status[2], item.status[1]));
      }
      tr.appendChild(td);
    }
    if (columns.first_seen) {
      td = cell("First seen");
      td.textContent = item.firstSeen;
      tr.appendChild(td);
    }
    return tr;
  }

  function showPage(view) {
    var start = view.page * PAGE_ROWS;
    var end = Math.min(start + PAGE_ROWS, view.matches.length);
    var rows = document.createDocumentFragment();
    for (var i = start; i < end; i += 1) {
      rows.appendChild(rowElement(view.matches[i]));
    }
    view.body.textContent = "";
    view.body.appendChild(rows);
    var kept = view.rows.length;
    var status = view.matches.length === 0 ? "none" : (start + 1) + "–" + end;
    status += " of " + view.matches.length;
    if (view.matches.length !== kept) {
      status += " matching (of " + kept + " on this page)";
    }
    if (kept !== view.total) {
      status += "; " + view.total + " in all";
    }
    view.pageStatus.textContent = status;
    view.previous.disabled = view.page === 0;
    view.next.disabled = end >= view.matches.length;
    view.pager.hidden = false;
  }

  // "61572" unfiltered; "14 of 61572" filtered when the page holds all of
  // the rule's findings; else "14 of 2500 here · 61572 in all", so a count
  // over the findings held is never read as one over all of them.
  function countText(matched, held, total) {
    if (matched === held) {
      return String(total);
    }
    if (held === total) {
      return matched + " of " + total;
    }
    return matched + " of " + held + " here · " + total + " in all";
  }

  function apply() {
    var started = performance.now();
    var query = filter.value.trim().toLowerCase();
    var min = Number(minSeverity.value) || 0;
    var shown = 0;
    views.forEach(function (view) {
      view.matches = query === "" && min === 0 ? view.rows : view.rows.filter(function (item) {
        return item.rank >= min && (query === "" || item.search.indexOf(query) !== -1);
      });
      view.page = 0;
      shown += view.matches.length;
    });
    var filtered = performance.now();
    views.forEach(function (view) {
      var matched = view.matches.length;
      view.count.textContent = countText(matched, view.rows.length, view.total);
      view.section.hidden = matched === 0;
      showPage(view);
    });
    shownCount.textContent = String(shown);
    var rendered = performance.now();
    // Layout included: the time is what a reader waits for.
    void document.body.offsetHeight;
    var done = performance.now();
    controls.setAttribute("data-filter-ms", (done - started).toFixed(1));
    // Where the time went: matching, building rows, layout.
    controls.setAttribute("data-filter-split", [filtered - started, rendered - filtered, done - rendered].map(function (ms) {
      return ms.toFixed(1);
    }).join(","));
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

  var sortKeys = {
    severity: function (item) { return item.rank; },
    group: function (item) { return item.group.toLowerCase(); },
    owner: function (item) { return (item.owner || "").toLowerCase(); },
    message: function (item) { return item.message.toLowerCase(); },
    status: function (item) { return item.status ? item.status[1].toLowerCase() : ""; },
    first_seen: function (item) { return item.firstSeen; }
  };

  function viewOf(element) {
    var section = element.closest("section.rule");
    for (var i = 0; i < views.length; i += 1) {
      if (views[i].section === section) {
        return views[i];
      }
    }
    return null;
  }

  function makeSortable(header) {
    var view = viewOf(header);
    var key = sortKeys[header.getAttribute("data-sort")];
    if (!view || !key) {
      return;
    }
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = header.textContent;
    header.textContent = "";
    header.appendChild(button);
    button.addEventListener("click", function () {
      var descending = header.getAttribute("aria-sort") === "ascending";
      Array.prototype.forEach.call(view.section.querySelectorAll("th[aria-sort]"), function (other) {
        other.removeAttribute("aria-sort");
      });
      header.setAttribute("aria-sort", descending ? "descending" : "ascending");
      view.rows.sort(function (a, b) {
        var x = key(a);
        var y = key(b);
        var order = x < y ? -1 : x > y ? 1 : a.order - b.order;
        return descending ? -order : order;
      });
      apply();
    });
  }

  views.forEach(function (view) {
    view.previous.addEventListener("click", function () {
      view.page -= 1;
      showPage(view);
    });
    view.next.addEventListener("click", function () {
      view.page += 1;
      showPage(view);
    });
    if (view.note && view.rows.length === view.total) {
      view.note.hidden = true;
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("table.findings-table th[data-sort]"), makeSortable);
  controls.hidden = false;
  filter.addEventListener("input", onInput);
  minSeverity.addEventListener("change", onInput);
  window.addEventListener("hashchange", readHash);
  readHash();
  // Milliseconds from the start of navigation until the page is ready.
  controls.setAttribute("data-ready-ms", performance.now().toFixed(0));

  // #selftest=word types `word` into the filter a letter at a time, as a
  // reader would, and records each answer's time (ms) in data-selftest:
  // the browser test's measure of the filter.
  var selftest = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("selftest");
  if (selftest) {
    var times = [];
    var splits = [];
    for (var i = 1; i <= selftest.length; i += 1) {
      filter.value = selftest.slice(0, i);
      filter.dispatchEvent(new Event("input"));
      times.push(controls.getAttribute("data-filter-ms"));
      splits.push(controls.getAttribute("data-filter-split"));
    }
    controls.setAttribute("data-selftest", times.join(","));
    controls.setAttribute("data-selftest-split", splits.join(";"));
  }
})();
