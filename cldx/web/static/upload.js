/* The upload page (templates/upload.html).

   Sends the form to the JSON API (POST /api/v1/submissions) with XMLHttpRequest, so a progress
   bar can show the bytes going up (fetch cannot report upload progress). A small upload is
   checked in the request (201); a large one is queued (202), and this script then polls the
   receipt (GET /api/v1/submissions/{id}) to show the worker's progress. Either way it ends on
   the submission's page. Errors in the API's shape ({ok, error, errors, status}) are listed in
   the form's alert region, each linked to its field.

   Without this script the form posts to /submissions, which does the same without progress. */
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

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    const files = document.getElementById("files").files;
    let size = 0;
    for (const file of files) size += file.size;
    const limit = Number(form.dataset.maxBytes);
    if (limit && size > limit) {
      showErrors("The files were not sent", "", [
        { location: ["files"], message: "together they are " + megabytes(size) + "; the most this server accepts is " + megabytes(limit) + "." },
      ]);
      return;
    }

    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.apiUrl);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-Cldx-Submitter", form.dataset.submitter || "upload page");
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
    xhr.send(new FormData(form));
  });
})();
