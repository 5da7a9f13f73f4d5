/* A submission's page (templates/submission.html).

   1. While the submission is queued or processing, poll its receipt
      (GET /api/v1/submissions/{id}), show the worker's progress, and reload the page once the
      worker has finished, so the counts and findings appear.
   2. Filter the findings table in the browser when the page holds every finding
      (data-complete="true"): rows carry data-severity, data-file and data-rule; the count of
      rows shown is announced, and the address keeps the filters so a reload or a shared link
      shows the same. When the page holds only some findings, the filter form is sent to the
      server instead (as it is without this script). */
(function () {
  "use strict";

  const POLL_MS = 1500;
  const ACTIVE = ["queued", "processing"];

  function followProgress(panel) {
    const url = panel.dataset.pollUrl;
    const label = document.getElementById("status-label");
    const step = document.getElementById("job-step");
    const bar = document.getElementById("job-progress");
    let failures = 0;

    function poll() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then(function (body) {
          failures = 0;
          if (ACTIVE.indexOf(body.status) < 0) {
            window.location.reload();
            return;
          }
          const state = body.progress || { status: "queued", step: "", done: 0, total: 0, error: null };
          const running = state.status === "running";
          label.textContent = running ? "Processing" : "Queued";
          panel.dataset.status = running ? "processing" : "queued";
          let text = state.step || "";
          if (state.error) text += (text ? ": " : "") + state.error;
          if (step.textContent !== text) step.textContent = text;
          if (running && state.total > 0 && state.done > 0) {
            bar.max = state.total;
            bar.value = state.done;
          }
          window.setTimeout(poll, POLL_MS);
        })
        .catch(function () {
          failures += 1;
          window.setTimeout(poll, POLL_MS * Math.min(failures + 1, 10));
        });
    }

    window.setTimeout(poll, POLL_MS);
  }

  function filterFindings(form) {
    const table = document.getElementById("findings");
    const shown = document.getElementById("findings-shown");
    const noMatch = document.getElementById("no-match");
    const clear = document.getElementById("clear-filters");
    const apply = document.getElementById("apply-filters");
    if (!table || !shown) return;
    const rows = Array.from(table.tBodies[0].rows);
    const selects = Array.from(form.querySelectorAll("select"));

    function update() {
      const wanted = {};
      const params = new URLSearchParams();
      for (const select of selects) {
        if (select.value) {
          wanted[select.name] = select.value;
          params.set(select.name, select.value);
        }
      }
      let count = 0;
      for (const row of rows) {
        const match = Object.keys(wanted).every(function (name) {
          return row.dataset[name] === wanted[name];
        });
        row.hidden = !match;
        if (match) count += 1;
      }
      shown.textContent = count.toLocaleString("en-NZ");
      noMatch.hidden = count > 0;
      clear.hidden = params.toString() === "";
      const query = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    }

    apply.hidden = true; // filters apply as soon as a choice changes
    for (const select of selects) select.addEventListener("change", update);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      update();
    });
    clear.addEventListener("click", function (event) {
      event.preventDefault();
      for (const select of selects) select.value = "";
      update();
      selects[0].focus();
    });
  }

  const panel = document.getElementById("submission-status");
  if (panel && panel.dataset.pollUrl && window.fetch) followProgress(panel);

  const form = document.getElementById("findings-filters");
  if (form && form.dataset.complete === "true") filterFindings(form);
})();
