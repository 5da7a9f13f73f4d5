/* The upload page (templates/upload.html).

   Sends the form to the JSON API (POST /api/v1/submissions) with XMLHttpRequest, so a progress
   bar can show the bytes going up (fetch cannot report upload progress). A small upload is
   checked in the request (201); a large one is queued (202), and this script then polls the
   receipt (GET /api/v1/submissions/{id}) to show the worker's progress. Either way it ends on
   the submission's page. Errors in the API's shape ({ok, error, errors, status}) are listed in
   the form's alert region, each linked to its field.

   Without this script the form posts to /submissions, which does the same without progress.

   A provider that sends no identity (its <option> has data-deidentify) never sends a name: each
   chosen CSV file is de-identified here (static/deidentify.js, the same output as
   `cldx deidentify`) and the input's file list is replaced by the results, same names, as soon
   as the files or the provider are chosen; anything but a CSV file is refused. The files as
   chosen are kept in memory only, to put back if an identified provider is chosen instead. */
(function () {
  "use strict";

  const form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;

  const POLL_MS = 1000;
  const ACTIVE = ["queued", "processing"];
  const FIELDS = {
    provider: { id: "provider", label: "Provider" },
    period: { id: "period", label: "Month" },
    mode: { id: "mode-partial", label: "If some rows have errors" },
    files: { id: "files", label: "Files" },
  };

  const errorBox = document.getElementById("form-errors");
  const statusBox = document.getElementById("upload-status");
  const uploadBar = document.getElementById("upload-progress");
  const workerRow = document.getElementById("worker-row");
  const workerBar = document.getElementById("worker-progress");
  const message = document.getElementById("upload-message");
  const sendButton = document.getElementById("send");
  const fileInput = document.getElementById("files");
  const providerSelect = document.getElementById("provider");
  const deidentifyHint = document.getElementById("deidentify-hint");
  const deidentifyStatus = document.getElementById("deidentify-status");
  const FILE_TYPES = fileInput.getAttribute("accept");
  const FILES_HINTS = fileInput.getAttribute("aria-describedby");
  const PROBLEMS_LISTED = 20; // per file; the rest are counted

  function megabytes(bytes) {
    if (bytes < 1024 * 1024) return Math.max(1, Math.round(bytes / 1024)).toLocaleString("en-NZ") + " KB";
    return (bytes / 1024 / 1024).toLocaleString("en-NZ", { maximumFractionDigits: 1 }) + " MB";
  }

  function say(text, link) {
    message.replaceChildren(text);
    if (link) {
      const a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      message.append(" ", a);
    }
  }

  function clearErrors() {
    errorBox.replaceChildren();
    errorBox.hidden = true;
    for (const field of Object.values(FIELDS)) {
      const control = document.getElementById(field.id);
      if (control) control.removeAttribute("aria-invalid");
    }
  }

  /* Show an error summary: a heading, the API's message when there are no details, and one
     item per detail linked to its field. Focus moves to it so it is read out and seen. */
  function showErrors(title, summary, errors) {
    clearErrors();
    const heading = document.createElement("h2");
    heading.className = "error-summary-title";
    heading.textContent = title;
    errorBox.append(heading);
    if (!errors.length && summary) {
      const p = document.createElement("p");
      p.textContent = summary;
      errorBox.append(p);
    }
    if (errors.length) {
      const list = document.createElement("ul");
      list.className = "error-list";
      for (const error of errors) {
        const location = Array.isArray(error.location) ? error.location : [];
        const field = FIELDS[location[location.length - 1]];
        const item = document.createElement("li");
        const text = (field ? field.label + ": " : "") + (error.message || summary);
        if (field) {
          const a = document.createElement("a");
          a.href = "#" + field.id;
          a.textContent = text;
          item.append(a);
          const control = document.getElementById(field.id);
          if (control) control.setAttribute("aria-invalid", "true");
        } else {
          item.textContent = text;
        }
        list.append(item);
      }
      errorBox.append(list);
    }
    errorBox.hidden = false;
    errorBox.focus();
  }

  function finish(problem) {
    sendButton.disabled = false;
    statusBox.hidden = true;
    showErrors("The files were not sent", problem.error || "", problem.errors || []);
  }

  function errorFrom(xhr) {
    let body = null;
    try {
      body = JSON.parse(xhr.responseText);
    } catch (_) {
      body = null;
    }
    if (body && typeof body.error === "string") return body;
    return { error: "The server answered " + xhr.status + " " + xhr.statusText + ". Try again in a minute.", errors: [] };
  }

  function openSubmission(id) {
    window.location.assign(form.dataset.pageUrl + encodeURIComponent(id));
  }

  /* A queued upload: follow the receipt until the worker has finished with it. */
  function follow(id, receipt) {
    const apiUrl = form.dataset.apiUrl + "/" + encodeURIComponent(id);
    const pageLink = { href: form.dataset.pageUrl + encodeURIComponent(id), text: "Open the submission page" };
    let failures = 0;

    function show(body) {
      const state = body.progress || { status: "queued", step: "", done: 0, total: 0, error: null };
      const running = state.status === "running";
      workerRow.hidden = false;
      if (running && state.total > 0 && state.done > 0) {
        workerBar.max = state.total;
        workerBar.value = state.done;
      } else {
        workerBar.removeAttribute("value"); // indeterminate: the worker reports no fraction yet
      }
      let text = running ? "Processing" : "Queued";
      if (state.step) text += ": " + state.step;
      if (state.error) text += " (" + state.error + ")";
      say(text + ".", pageLink);
      statusBox.dataset.state = running ? "processing" : "queued";
    }

    function poll() {
      fetch(apiUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.json();
        })
        .then(function (body) {
          failures = 0;
          if (ACTIVE.indexOf(body.status) >= 0) {
            show(body);
            window.setTimeout(poll, POLL_MS);
          } else {
            workerBar.max = 1;
            workerBar.value = 1;
            say("Done. Opening the submission…");
            openSubmission(id);
          }
        })
        .catch(function () {
          failures += 1;
          if (failures < 5) {
            window.setTimeout(poll, POLL_MS * 2 * failures);
          } else {
            say("Could not check on the upload; it is still being processed.", pageLink);
          }
        });
    }

    show(receipt);
    window.setTimeout(poll, POLL_MS);
  }

  // --- De-identification for providers that send no identity --------------------------------

  let chosen = []; // the files as chosen, with names: never sent for a de-identified provider
  let prepared = null; // Promise of the de-identified files for `chosen`, while such a provider is selected
  let generation = 0; // a newer choice makes an older de-identification's result stale
  let refusalShown = false; // the error summary lists refused files (cleared when they are gone)
  const madeHere = new WeakSet(); // the File objects this page de-identified

  function deidentifies() {
    const option = providerSelect && providerSelect.selectedOptions[0];
    return Boolean(option && option.hasAttribute("data-deidentify"));
  }

  /* Put files in the input's list (the browser shows their names); DataTransfer is the only
     way to set it. What is sent is decided in the submit handler, not by this list. */
  function showFiles(files) {
    try {
      const list = new DataTransfer();
      for (const file of files) list.items.add(file);
      fileInput.files = list.files;
    } catch (_) {
      /* an older browser: the submit handler sends the de-identified files all the same */
    }
  }

  function refusal(file) {
    if (/\.xlsx?$/i.test(file.name)) {
      return file.name + " is an Excel workbook, which would send names from this computer. Save each sheet as CSV UTF-8 and choose those files.";
    }
    return file.name + " is not a CSV file. Only CSV files can be de-identified on this computer before they are sent.";
  }

  /* De-identify each chosen CSV file: { files, refused, reports }. Nothing here is sent. */
  async function deidentifyAll(files) {
    const result = { files: [], refused: [], reports: [] };
    for (const file of files) {
      if (madeHere.has(file)) {
        result.files.push(file);
        continue;
      }
      if (!/\.csv$/i.test(file.name)) {
        result.refused.push(refusal(file));
        continue;
      }
      let output;
      try {
        output = window.cldxDeidentify.deidentifyBytes(new Uint8Array(await file.arrayBuffer()));
      } catch (error) {
        result.refused.push(file.name + " could not be read as a CSV file (" + error.message + "), so it was not kept.");
        continue;
      }
      const made = new File([output.bytes], file.name, { type: "text/csv", lastModified: file.lastModified });
      madeHere.add(made);
      result.files.push(made);
      result.reports.push({ name: file.name, rows: output.rows, removed: output.removed, keyed: output.keyed, problems: output.problems });
    }
    return result;
  }

  function report(result) {
    const parts = [];
    const heading = document.createElement("p");
    heading.className = "status-message";
    heading.textContent = "Names and dates of birth were removed on this computer; only the SLK-581 and birth month are sent.";
    parts.push(heading);
    const list = document.createElement("ul");
    for (const file of result.reports) {
      const item = document.createElement("li");
      let text = file.name + ": " + file.rows.toLocaleString("en-NZ") + (file.rows === 1 ? " row" : " rows");
      if (file.removed.length) text += "; removed " + file.removed.join(", ");
      if (file.keyed) text += "; added slk581 and birth_year_month";
      if (!file.removed.length && !file.keyed) text += "; no names or dates of birth in it";
      item.textContent = text + ".";
      if (file.problems.length) {
        const problems = document.createElement("ul");
        for (const problem of file.problems.slice(0, PROBLEMS_LISTED)) {
          const line = document.createElement("li");
          line.textContent = problem;
          problems.append(line);
        }
        if (file.problems.length > PROBLEMS_LISTED) {
          const more = document.createElement("li");
          more.textContent = "and " + (file.problems.length - PROBLEMS_LISTED).toLocaleString("en-NZ") + " more rows like these.";
          problems.append(more);
        }
        item.append(problems);
      }
      list.append(item);
    }
    if (result.reports.length) parts.push(list);
    deidentifyStatus.replaceChildren(...parts);
    deidentifyStatus.hidden = !result.reports.length;
  }

  /* Bring the input in line with the provider: de-identified files for one that sends no
     identity, the files as chosen for one that does. */
  function refresh() {
    generation += 1;
    const mine = generation;
    const hidden = !deidentifies();
    if (deidentifyHint) {
      deidentifyHint.hidden = hidden;
      fileInput.setAttribute("aria-describedby", hidden ? FILES_HINTS : FILES_HINTS + " deidentify-hint");
    }
    fileInput.setAttribute("accept", hidden ? FILE_TYPES : ".csv");
    deidentifyStatus.replaceChildren();
    deidentifyStatus.hidden = true;
    if (refusalShown) {
      clearErrors();
      refusalShown = false;
    }
    if (hidden) {
      prepared = null;
      if (Array.from(fileInput.files).some((file) => madeHere.has(file))) showFiles(chosen);
      return;
    }
    if (!window.cldxDeidentify) {
      prepared = Promise.reject(new Error("This page could not load its de-identification script (deidentify.js)."));
      prepared.catch(function () {}); // reported when the form is sent
      return;
    }
    prepared = deidentifyAll(chosen).then(function (result) {
      if (mine === generation) {
        if (chosen.length) showFiles(result.files);
        report(result);
        if (result.refused.length) {
          showErrors(
            "Some files were not kept",
            "",
            result.refused.map((message) => ({ location: ["files"], message: message })),
          );
          refusalShown = true;
        }
      }
      return result;
    });
    prepared.catch(function () {}); // reported when the form is sent
  }

  fileInput.addEventListener("change", function () {
    chosen = Array.from(fileInput.files);
    refresh();
  });
  if (providerSelect) providerSelect.addEventListener("change", refresh);
  refresh();

  /* For a de-identified provider, the files to send: only files made here. */
  async function deidentifiedFiles() {
    if (!prepared || Array.from(fileInput.files).some((file) => !madeHere.has(file))) {
      // Files the change handler did not see (a form the browser restored): prepare them now.
      chosen = Array.from(fileInput.files);
      refresh();
    }
    const result = await prepared;
    return result.files.filter((file) => madeHere.has(file));
  }

  /* Send the form; `files`, when given, replace the input's files in the request. */
  function send(files) {
    let size = 0;
    for (const file of files || fileInput.files) size += file.size;
    const limit = Number(form.dataset.maxBytes);
    if (limit && size > limit) {
      showErrors("The files were not sent", "", [
        { location: ["files"], message: "together they are " + megabytes(size) + "; the most this server accepts is " + megabytes(limit) + "." },
      ]);
      return;
    }
    const body = new FormData(form);
    if (files) {
      body.delete("files");
      for (const file of files) body.append("files", file, file.name);
    }

    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.apiUrl);
    xhr.setRequestHeader("Accept", "application/json");
    // The session cookie goes with the request, so the API wants the session's CSRF token too.
    const csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf.content);
    xhr.responseType = "text";

    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) return;
      uploadBar.max = e.total;
      uploadBar.value = e.loaded;
      uploadBar.textContent = Math.round((100 * e.loaded) / e.total) + "%";
      say("Sent " + megabytes(e.loaded) + " of " + megabytes(e.total) + ".");
    });
    xhr.upload.addEventListener("load", function () {
      uploadBar.value = uploadBar.max;
      workerRow.hidden = false;
      workerBar.removeAttribute("value");
      say("Files sent. Checking them…");
    });
    xhr.addEventListener("load", function () {
      if (xhr.status === 201 || xhr.status === 202) {
        let receipt;
        try {
          receipt = JSON.parse(xhr.responseText);
        } catch (_) {
          finish({ error: "The server's answer could not be read. Check the submissions list before sending again." });
          return;
        }
        if (xhr.status === 201) {
          say("Done. Opening the submission…");
          openSubmission(receipt.submission_id);
        } else {
          follow(receipt.submission_id, receipt);
        }
        return;
      }
      finish(errorFrom(xhr));
    });
    xhr.addEventListener("error", function () {
      finish({ error: "The files did not reach the server. Check your connection and send them again." });
    });
    xhr.addEventListener("abort", function () {
      finish({ error: "The upload was stopped before it finished." });
    });

    sendButton.disabled = true;
    statusBox.hidden = false;
    workerRow.hidden = true;
    uploadBar.max = Math.max(size, 1);
    uploadBar.value = 0;
    say("Sending " + megabytes(size) + "…");
    xhr.send(body);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    if (!deidentifies()) {
      send(null);
      return;
    }
    sendButton.disabled = true; // while the files are prepared: a second click must not send twice
    deidentifiedFiles().then(
      function (files) {
        sendButton.disabled = false;
        if (!files.length) {
          showErrors("The files were not sent", "", [{ location: ["files"], message: "Choose at least one CSV file to send." }]);
          return;
        }
        send(files);
      },
      function (error) {
        sendButton.disabled = false;
        showErrors("The files were not sent", error.message + " Nothing was sent. Reload the page, or run cldx deidentify and send the files it writes.", []);
      },
    );
  });
})();
