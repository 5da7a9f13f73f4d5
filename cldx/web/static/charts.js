/* Charts on the report pages: Vega-Lite specs (built by cldx/web/charts.py) drawn as SVG.

   Markup, either
     <figure class="chart"><script type="application/json" class="chart-spec">{…}</script></figure>
   (a JSON data block: the browser never runs it, so the Content Security Policy allows it) or
     <figure class="chart" data-spec-url="/some/url.json"></figure>
   The chart is drawn into the figure's <div class="chart-canvas"> (made if missing). A spec that
   cannot be read or drawn leaves a short message in the figure, never an empty box. The figure
   is named for assistive technology from the spec's description (role="img", aria-label); a
   figure with a <figcaption> keeps its own role (ARIA in HTML allows none on a captioned figure)
   and its caption, and the chart canvas inside it is the named image instead.

   Downloads: once drawn, a figure is followed by "Download PNG" and "Download SVG" buttons
   (a <p class="chart-downloads"> right after it, never inside it: role="img" makes everything
   inside the figure presentational, so controls there would be hidden from assistive technology,
   as vega-embed's own action links were). A click asks the Vega view for the image
   (view.toImageURL: a data: URL for PNG, a blob: URL for SVG) and saves it through a temporary
   <a download>; neither is a fetch, so the policy needs no change. The file is named from the
   figure's data-file-name (e.g. "reach-people"), else the spec's title, else the figure's id.

   Needs, loaded before this file: vendor/vega, vendor/vega-lite and vendor/vega-embed (the
   globals vega, vegaLite and vegaEmbed) and vendor/vega-embed.css.

   No eval: the policy has no 'unsafe-eval', so Vega must not compile its expressions into
   functions. `ast: true` makes Vega keep them as syntax trees, and vega-embed then evaluates them
   with the CSP-safe interpreter of the vega-interpreter package, which its build bundles (the
   vega-interpreter package itself ships only an ES module, and the vega build does not include
   it). `expr` is passed only if a page ever provides a standalone interpreter as a global.

   Figures are drawn on DOMContentLoaded and, after htmx swaps content in, under the swapped
   element (data-chart-state marks each figure: "loading", "rendered" or "failed"). */
(function () {
  "use strict";

  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Liberation Sans", Arial, sans-serif';
  const INK = "#1b1f24";
  const MUTED = "#4d5661";

  // Readable defaults for every chart (the spec's own config, if any, wins).
  const CONFIG = {
    // The figure is one image to assistive technology (role="img", named from the spec's
    // description; the table beside it holds the values), so Vega's own ARIA for each mark and
    // axis is left out: inside role="img" it would not be read anyway, and marks Vega cannot
    // describe (a rule from x to x2, a line of several points) would be unnamed graphics.
    aria: false,
    font: FONT,
    background: "#ffffff",
    padding: 8,
    view: { stroke: null },
    title: { fontSize: 16, fontWeight: 600, color: INK, anchor: "start", offset: 12, subtitleColor: MUTED, subtitleFontSize: 13 },
    axis: {
      labelFontSize: 13, titleFontSize: 13, titleFontWeight: 600, labelColor: MUTED, titleColor: INK,
      gridColor: "#e3e7eb", domainColor: "#8a949e", tickColor: "#8a949e", labelLimit: 220, titlePadding: 10
    },
    legend: { labelFontSize: 13, titleFontSize: 13, titleFontWeight: 600, labelColor: INK, titleColor: INK, labelLimit: 260 },
    header: { labelFontSize: 13, titleFontSize: 13 },
    mark: { color: "#0b4f6c", aria: false }, // see `aria` above: hides each mark group (aria-hidden)
    bar: { color: "#0b4f6c" },
    line: { strokeWidth: 2 },
    point: { size: 60 },
    // Okabe–Ito, without its yellow (too faint on white), then a dark grey.
    range: { category: ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000", "#6b7480"] },
    numberFormat: ",~r"
  };

  function embedOptions() {
    const options = {
      renderer: "svg",
      actions: false, // cldx's own download buttons instead, outside the figure (see the top)
      ast: true,
      defaultStyle: false, // vega-embed would add a <style> element; its rules are in vega-embed.css
      tooltip: { disableDefaultStyle: true }, // likewise vega-tooltip's
      config: CONFIG
    };
    // vega-embed falls back to the interpreter it bundles; pass one only if a page loaded its own.
    const interpreter = (window.vega && window.vega.expressionInterpreter) || window.vegaExpressionInterpreter;
    if (interpreter) options.expr = interpreter;
    return options;
  }

  function canvasOf(figure) {
    let canvas = figure.querySelector(":scope > .chart-canvas");
    if (!canvas) {
      canvas = document.createElement("div");
      canvas.className = "chart-canvas";
      figure.appendChild(canvas);
    }
    return canvas;
  }

  function readSpec(figure) {
    const url = figure.dataset.specUrl;
    if (url) {
      return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" }).then(function (response) {
        if (!response.ok) throw new Error("the chart data could not be loaded (" + response.status + ")");
        return response.json();
      });
    }
    const block = figure.querySelector('script[type="application/json"].chart-spec');
    if (!block) return Promise.reject(new Error("the page holds no chart data"));
    return new Promise(function (resolve) {
      resolve(JSON.parse(block.textContent));
    });
  }

  // PNG at twice the drawn size: sharp on high-density screens and when pasted into a document.
  const FORMATS = [
    { type: "png", label: "Download PNG", scale: 2 },
    { type: "svg", label: "Download SVG", scale: 1 }
  ];
  // A blob: URL is freed once the browser has had time to start saving it (freeing it at once can
  // cancel the download).
  const REVOKE_AFTER_MS = 60000;

  function fileStem(figure, spec) {
    const stem = figure.dataset.fileName || (typeof spec.title === "string" && spec.title) || figure.id || "chart";
    const slug = stem.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80);
    return slug || "chart";
  }

  function save(url, fileName) {
    const link = document.createElement("a");
    link.href = url;
    link.download = fileName;
    link.hidden = true;
    document.body.appendChild(link);
    link.click();
    link.remove();
    if (url.startsWith("blob:")) {
      window.setTimeout(function () {
        URL.revokeObjectURL(url);
      }, REVOKE_AFTER_MS);
    }
  }

  function addDownloads(figure, spec, view) {
    const existing = figure.nextElementSibling;
    if (existing && existing.classList.contains("chart-downloads")) existing.remove();
    const bar = document.createElement("p");
    bar.className = "chart-downloads";
    if (figure.id) bar.id = figure.id + "-downloads";
    const stem = fileStem(figure, spec);
    // Several charts on a page each have these two buttons: the chart's title, read but not
    // shown, tells them apart for a screen reader.
    const title = typeof spec.title === "string" ? spec.title : "";
    const message = document.createElement("span");
    message.className = "chart-download-message";
    message.setAttribute("role", "status");
    FORMATS.forEach(function (format) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button button-secondary chart-download";
      button.dataset.format = format.type;
      button.append(format.label);
      if (title) {
        const hidden = document.createElement("span");
        hidden.className = "visually-hidden";
        hidden.textContent = " (" + title + ")";
        button.appendChild(hidden);
      }
      button.addEventListener("click", function () {
        button.disabled = true;
        message.textContent = "";
        view.toImageURL(format.type, format.scale)
          .then(function (url) {
            save(url, stem + "." + format.type);
          })
          .catch(function (error) {
            message.textContent = "The " + format.type.toUpperCase() + " file could not be made.";
            console.error("cldx chart download:", error);
          })
          .finally(function () {
            button.disabled = false;
          });
      });
      bar.appendChild(button);
    });
    bar.appendChild(message);
    figure.after(bar);
  }

  // The element that is the chart's image for assistive technology (see the top).
  function imageOf(figure) {
    return figure.querySelector(":scope > figcaption") ? canvasOf(figure) : figure;
  }

  // Called again once drawn: Vega makes the canvas (its container) a "graphics-document" with a
  // role description, which for a captioned figure's canvas is replaced by the one plain image.
  function nameImage(figure, spec) {
    if (typeof spec.description !== "string" || !spec.description) return;
    const image = imageOf(figure);
    image.setAttribute("role", "img");
    image.setAttribute("aria-label", spec.description);
    image.removeAttribute("aria-roledescription");
  }

  function showError(figure, error) {
    figure.dataset.chartState = "failed";
    const image = imageOf(figure);
    image.removeAttribute("role");
    image.removeAttribute("aria-label");
    const canvas = canvasOf(figure);
    canvas.replaceChildren();
    const message = document.createElement("p");
    message.className = "chart-error";
    message.textContent = "This chart could not be drawn.";
    canvas.appendChild(message);
    // For whoever looks at the console; the page itself says only that the chart is missing.
    console.error("cldx chart:", error);
  }

  function render(figure) {
    if (figure.dataset.chartState) return; // drawn, being drawn, or failed: once is enough
    if (typeof window.vegaEmbed !== "function") {
      showError(figure, new Error("vega-embed is not loaded"));
      return;
    }
    figure.dataset.chartState = "loading";
    let spec = null;
    readSpec(figure)
      .then(function (read) {
        spec = read;
        if (!spec || typeof spec !== "object") throw new Error("the chart data is not a Vega-Lite spec");
        nameImage(figure, spec);
        return window.vegaEmbed(canvasOf(figure), spec, embedOptions());
      })
      .then(function (result) {
        nameImage(figure, spec);
        addDownloads(figure, spec, result.view);
        figure.dataset.chartState = "rendered";
      })
      .catch(function (error) {
        showError(figure, error);
      });
  }

  function renderWithin(root) {
    if (root.matches && root.matches("figure.chart")) render(root);
    root.querySelectorAll("figure.chart").forEach(render);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () {
      renderWithin(document);
    });
  } else {
    renderWithin(document); // loaded late (not deferred, or added after the page was parsed)
  }

  // htmx fires htmx:afterSettle on the element it swapped into; after an outerHTML swap that
  // element may have left the page, so look at the whole page (drawn figures are skipped).
  document.addEventListener("htmx:afterSettle", function (event) {
    const target = event.target;
    renderWithin(target && target.isConnected && target.querySelectorAll ? target : document);
  });
})();
