/* Charts on the report pages: Vega-Lite specs (built by cldx/web/charts.py) drawn as SVG.

   Markup, either
     <figure class="chart"><script type="application/json" class="chart-spec">{…}</script></figure>
   (a JSON data block: the browser never runs it, so the Content Security Policy allows it) or
     <figure class="chart" data-spec-url="/some/url.json"></figure>
   The chart is drawn into the figure's <div class="chart-canvas"> (made if missing). A spec that
   cannot be read or drawn leaves a short message in the figure, never an empty box. The figure
   is named for assistive technology from the spec's description (role="img", aria-label).

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
    mark: { color: "#0b4f6c" },
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
      actions: { export: true, source: false, compiled: false, editor: false },
      ast: true,
      defaultStyle: false, // vega-embed would add a <style> element; its rules are in vega-embed.css
      tooltip: { disableDefaultStyle: true }, // likewise vega-tooltip's
      config: CONFIG,
      i18n: { PNG_ACTION: "Save as PNG", SVG_ACTION: "Save as SVG" }
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

  function showError(figure, error) {
    figure.dataset.chartState = "failed";
    figure.removeAttribute("role");
    figure.removeAttribute("aria-label");
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
    readSpec(figure)
      .then(function (spec) {
        if (!spec || typeof spec !== "object") throw new Error("the chart data is not a Vega-Lite spec");
        if (typeof spec.description === "string" && spec.description) {
          figure.setAttribute("role", "img");
          figure.setAttribute("aria-label", spec.description);
        }
        return window.vegaEmbed(canvasOf(figure), spec, embedOptions());
      })
      .then(function () {
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
