/// The web page at `/`: one HTML document with inline CSS and JavaScript, no build step and no CDN. It drives
/// the jobs API: `POST /v1/jobs`, live progress and router weights from `GET /v1/jobs/{id}/events`, the images
/// and the trace from `GET /v1/jobs/{id}`, cancel with `DELETE`, and the experts from `GET /v1/experts`. Each
/// image gets its routing view: a heat map of router weight per expert (rows) per step (columns), the expert
/// that drew most of it, the steps where the router changed its mind, and the experts' contact sheets.
enum WebPage {
    static let html = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><title>Paris: mixture of experts</title>
    <link rel="icon" href="data:,">
    <style>
    body{font:14px system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
    header{background:#1d2b53;color:#fff;padding:10px 18px}header h1{margin:0;font-size:18px}
    header span{opacity:.75;font-size:12px}
    main{display:grid;grid-template-columns:300px 1fr;gap:16px;padding:16px}
    form,.card{background:#fff;border-radius:8px;padding:12px;box-shadow:0 1px 3px #0002}
    label{display:block;margin:8px 0 2px;font-weight:600;font-size:12px}
    input,select,textarea{width:100%;box-sizing:border-box;padding:5px;font:inherit}
    button{margin-top:10px;padding:7px 14px;font:inherit;border:0;border-radius:5px;background:#1d2b53;color:#fff;cursor:pointer}
    button:disabled{opacity:.4;cursor:default}#cancel{background:#a33}
    #bar{height:8px;background:#ddd;border-radius:4px;margin-top:10px;overflow:hidden}
    #bar div{height:100%;width:0;background:#3a7}#status{font-size:12px;margin-top:4px;min-height:16px}
    #gallery{display:flex;flex-direction:column;gap:12px}
    .item{display:flex;gap:14px;align-items:flex-start}
    .item img.sample{width:128px;height:128px;image-rendering:pixelated;border:1px solid #ccc}
    .routing h3{margin:0 0 4px;font-size:13px}.routing p{margin:4px 0;font-size:12px}
    canvas{border:1px solid #ccc;image-rendering:pixelated}
    #experts{display:flex;gap:10px;flex-wrap:wrap;margin-top:8px}
    #experts figure{margin:0;font-size:11px;text-align:center}#experts img{width:96px;image-rendering:pixelated}
    .sheet-missing{width:96px;height:96px;background:#eee;display:flex;align-items:center;justify-content:center;color:#888}
    </style></head>
    <body>
    <header><h1>Paris · decentralized mixture of experts</h1><span id="run"></span></header>
    <main>
    <form id="form">
      <label for="prompt">Prompt</label><textarea id="prompt" rows="3">a photo of a cat</textarea>
      <label for="strategy">Routing strategy</label>
      <select id="strategy"><option>top2</option><option>top1</option><option>full</option><option>sample1</option><option>prompt</option></select>
      <label for="steps">Steps</label><input id="steps" type="number" min="1" value="20">
      <label for="cfg">CFG scale</label><input id="cfg" type="number" step="0.5" value="4">
      <label for="seed">Seed (−1: random)</label><input id="seed" type="number" value="-1">
      <label for="batch">Images</label><input id="batch" type="number" min="1" value="1">
      <button id="generate" type="submit">Generate</button>
      <button id="cancel" type="button" disabled>Cancel</button>
      <div id="bar"><div></div></div><div id="status"></div>
      <label>Live routing (first image)</label><canvas id="live" width="200" height="40"></canvas>
    </form>
    <section>
      <div class="card"><b>Experts</b><div id="experts"></div></div>
      <div id="gallery" style="margin-top:12px"></div>
    </section>
    </main>
    <script>
    "use strict";
    const $ = id => document.getElementById(id);
    let experts = [], job = null, source = null;
    const colour = w => { const v = Math.round(255 * (1 - w)); return `rgb(${v},${Math.round(v * 0.9 + 25)},255)`; };
    // weights[step][k] → a K × steps heat map: row k is expert k, column s is step s, darker = more weight.
    function heatmap(canvas, weights, k) {
      const cell = Math.max(4, Math.min(16, Math.floor(320 / Math.max(1, weights.length)))), left = 26;
      canvas.width = left + Math.max(1, weights.length) * cell; canvas.height = k * 14;
      const g = canvas.getContext("2d");
      g.fillStyle = "#fff"; g.fillRect(0, 0, canvas.width, canvas.height);
      g.fillStyle = "#333"; g.font = "10px sans-serif";
      for (let e = 0; e < k; e++) g.fillText(`e${e}`, 3, e * 14 + 11);
      weights.forEach((row, s) => row.forEach((w, e) => {
        g.fillStyle = colour(w); g.fillRect(left + s * cell, e * 14, cell, 14);
        g.strokeStyle = "#fff"; g.strokeRect(left + s * cell, e * 14, cell, 14);
      }));
    }
    function summary(weights, k) {
      const totals = new Array(k).fill(0);
      weights.forEach(row => row.forEach((w, e) => totals[e] += w));
      const top = totals.indexOf(Math.max(...totals));
      const argmax = weights.map(row => row.indexOf(Math.max(...row)));
      const changes = argmax.map((e, s) => s > 0 && e !== argmax[s - 1] ? s + 1 : 0).filter(s => s > 0);
      const cluster = experts[top] ? experts[top].cluster : top;
      return `Drawn mostly by expert ${top} (cluster ${cluster}), ${(100 * totals[top] / Math.max(1, weights.length)).toFixed(0)}% of the weight. `
        + (changes.length ? `The router changed its mind at step ${changes.join(", ")}.` : "The router never changed its mind.");
    }
    async function loadExperts() {
      const [h, e] = await Promise.all([fetch("/healthz").then(r => r.json()), fetch("/v1/experts").then(r => r.json())]);
      experts = e.experts;
      $("run").textContent = `${h.num_experts} experts · ${h.image_size}×${h.image_size} images`;
      if (h.default_steps) $("steps").value = h.default_steps;
      if (h.default_cfg_scale) $("cfg").value = h.default_cfg_scale;
      $("experts").innerHTML = "";
      for (const x of experts) {
        const f = document.createElement("figure");
        f.innerHTML = x.contact_sheet ? `<img alt="expert ${x.index}" src="${x.contact_sheet}">` : `<div class="sheet-missing">no sheet</div>`;
        const c = document.createElement("figcaption");
        c.textContent = `expert ${x.index} · cluster ${x.cluster} · ${x.health}`;
        f.appendChild(c); $("experts").appendChild(f);
      }
    }
    function setBusy(busy) { $("generate").disabled = busy; $("cancel").disabled = !busy; }
    function status(text, fraction) { $("status").textContent = text; if (fraction !== undefined) $("bar").firstElementChild.style.width = `${100 * fraction}%`; }
    async function generate(event) {
      event.preventDefault();
      const body = { prompt: $("prompt").value, strategy: $("strategy").value, steps: +$("steps").value,
                     cfg_scale: +$("cfg").value, seed: +$("seed").value, batch_size: +$("batch").value };
      const r = await fetch("/v1/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const answer = await r.json();
      if (!r.ok) { status(`refused: ${answer.field ? answer.field + ": " : ""}${answer.error}`, 0); return; }
      job = answer.id; setBusy(true); status("queued", 0);
      const live = [];
      source = new EventSource(`/v1/jobs/${job}/events`);
      source.addEventListener("state", e => status(JSON.parse(e.data).state));
      source.addEventListener("progress", e => {
        const p = JSON.parse(e.data);
        for (const r of p.routing) live.push(r.weights[0]);
        heatmap($("live"), live, experts.length);
        status(`step ${p.done_steps} / ${p.total_steps}`, p.done_steps / p.total_steps);
      });
      const end = async e => { source.close(); source = null; setBusy(false); await finished(JSON.parse(e.data)); };
      for (const name of ["done", "failed", "cancelled"]) source.addEventListener(name, end);
    }
    async function finished(last) {
      const id = last.id;
      if (last.state !== "done") { status(last.state + (last.error ? `: ${last.error}` : ""), 0); return; }
      const j = await fetch(`/v1/jobs/${id}`).then(r => r.json());
      status(`done: ${j.images.length} image(s), seeds ${j.seeds.join(", ")}`, 1);
      j.images.forEach((b64, i) => {
        const weights = j.trace.steps.map(s => s.weights[i]);
        const item = document.createElement("div"); item.className = "item card";
        item.innerHTML = `<img class="sample" alt="sample" src="data:image/png;base64,${b64}">
          <div class="routing"><h3>Routing · seed ${j.seeds[i]} · ${j.parameters.strategy}</h3>
          <canvas class="heat"></canvas><p class="legend">rows: experts 0…${experts.length - 1}; columns: steps 1…${weights.length}; darker = more weight</p>
          <p class="summary"></p><p class="prompt"></p></div>`;
        heatmap(item.querySelector("canvas"), weights, experts.length);
        item.querySelector(".summary").textContent = summary(weights, experts.length);
        item.querySelector(".prompt").textContent = `“${j.parameters.prompt}”`;
        $("gallery").prepend(item);
      });
    }
    $("form").addEventListener("submit", generate);
    $("cancel").addEventListener("click", async () => { if (job) await fetch(`/v1/jobs/${job}`, { method: "DELETE" }); });
    loadExperts().catch(e => status(`cannot reach the server: ${e}`));
    </script></body></html>
    """#
}
