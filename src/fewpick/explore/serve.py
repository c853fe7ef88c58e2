"""The interactive page of an exploration run (SPEC §3, step 6): ``fewpick explore serve RUN``.

A small HTTP server (standard library, threads) serves one self-contained page — its script and style
are inline, it loads nothing from elsewhere, so it works offline and through an SSH tunnel — plus the
run's data: ``/data.json`` (map positions, classes, tomogram of each candidate), ``/thumbs.png`` (the
atlas of candidate images) and ``/gallery.png``. The page draws the map coloured by class, shows a
candidate's image on hover, selects whole classes (check boxes) or a region (lasso), counts the
selection, and posts it to ``/export``, which writes the chosen candidates' 3D coordinates in the
original tomogram voxels: ``RUN/selected.star`` (all tomograms) and ``RUN/selected/<tomogram>.coords``
— the labels for ``fewpick tomo train``.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Sequence

import numpy as np
import pandas as pd

from fewpick.errors import InputError
from fewpick.explore.gallery import ATLAS_COLUMNS
from fewpick.explore.run import Run
from fewpick.io import read_picks, write_picks
from fewpick.webserver import PageHandler, PageServer, RequestError, body_cap, page_head, parse_indices


def load_view(run: Run) -> tuple[dict, pd.DataFrame]:
    """What the page shows of a finished run: its JSON payload and the candidates table."""
    manifest = run.load()
    missing = [s for s in ("classes", "gallery") if s not in manifest.get("stages", {})]
    if missing:
        raise InputError(run.folder, f"the run is not finished (stages left: {', '.join(missing)}); run "
                                     "'fewpick explore' again with the same options to complete it")
    table = read_picks(run.path("candidates.star"))
    xy = np.load(run.path("map.npy"))
    if len(xy) != len(table) or "label" not in table.columns:
        raise InputError(run.folder, f"map.npy has {len(xy)} points but candidates.star has {len(table)} rows "
                                     "with{} classes: the folder is damaged; run 'fewpick explore' again into a "
                                     "new folder".format("" if "label" in table.columns else "out"))
    names = [t["name"] for t in manifest["tomograms"]]
    index = {n: i for i, n in enumerate(names)}
    classes = table["label"].to_numpy(int)
    settings = manifest["settings"]
    view = {
        "run": run.folder.resolve().name,
        "n": len(table),
        "x": np.round(xy[:, 0].astype(float), 3).tolist(),
        "y": np.round(xy[:, 1].astype(float), 3).tolist(),
        "cls": classes.tolist(),
        "tomo": [index.get(str(m), 0) for m in table["micrograph"]],
        "tomograms": names,
        "classes": sorted({int(c) for c in classes}),
        "tile": int(settings["size"]),
        "columns": ATLAS_COLUMNS,
        "xyz": np.round(table[["x", "y", "z"]].to_numpy(float), 1).tolist(),
        "shapes": [t.get("shape_zyx") for t in manifest["tomograms"]],
        "radius": float(settings["radius"]),
    }
    return view, table


def class_averages(inputs: np.ndarray, classes: np.ndarray) -> bytes:
    """A PNG with the average image of each class side by side, in ascending class order (proteins dark)."""
    from PIL import Image as PILImage

    from fewpick.explore.gallery import average_image

    labels = np.unique(classes)
    n, size = len(labels), inputs.shape[-1]
    strip = np.full((size, max(1, n) * size), 255, np.uint8)
    for k, c in enumerate(labels):
        strip[:, k * size : (k + 1) * size] = average_image(inputs[classes == c])
    buf = io.BytesIO()
    PILImage.fromarray(strip).save(buf, format="PNG")
    return buf.getvalue()


class Sections:
    """Sections of the run's tomograms for the slice viewer: a slab of ``thickness`` sections around z, averaged,
    binned to at most ``max_px`` a side and low-passed, as PNG (proteins dark, as in the tomogram)."""

    def __init__(self, manifest: dict, thickness: int, max_px: int = 640):
        self.tomograms = manifest["tomograms"]
        self.half = max(0, thickness // 2)
        self.max_px = max_px
        self._volumes: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def volume(self, t: int) -> np.ndarray:
        from fewpick.io import read_volume

        with self._lock:
            if t not in self._volumes:
                if len(self._volumes) >= 2:
                    self._volumes.pop(next(iter(self._volumes)))
                self._volumes[t] = read_volume(self.tomograms[t]["path"]).data
            return self._volumes[t]

    def png(self, t: int, z: int) -> bytes:
        from fewpick.report import display_png

        vol = self.volume(t)
        z = int(np.clip(z, 0, vol.shape[0] - 1))
        section = np.asarray(vol[max(0, z - self.half) : z + self.half + 1], np.float32).mean(0)
        return display_png(section, self.max_px, min_sigma=0.7)[0]


def export_selection(run: Run, indices: Sequence[int], table: pd.DataFrame | None = None) -> dict:
    """Write the candidates ``indices`` (rows of ``candidates.star``) as ``RUN/selected.star`` and one
    ``RUN/selected/<tomogram>.coords`` per tomogram (empty where none is chosen); returns what was written."""
    manifest = run.load()
    if table is None:
        table = read_picks(run.path("candidates.star"))
    indices = list(indices)
    if not indices:
        raise InputError(None, "nothing is selected: choose classes or draw a lasso first")
    for i in indices:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise InputError(None, f"candidate indices must be integers, not {i!r:.40}")
        if not 0 <= i < len(table):
            raise InputError(None, f"candidate index {str(i)[:20]} is outside 0…{len(table) - 1}")
    idx = np.asarray(indices, dtype=np.int64)
    chosen = table.iloc[np.unique(idx)].reset_index(drop=True)
    names = [t["name"] for t in manifest["tomograms"]]
    star = write_picks(chosen, run.path("selected.star"))
    coords = write_picks(chosen[["micrograph", "x", "y", "z"]], run.path("selected") / "", "coords",
                         micrographs=names)
    per = {n: int((chosen["micrograph"].astype(str) == n).sum()) for n in names}
    return {"count": len(chosen), "star": str(star[0]), "coords": [str(p) for p in coords], "per_tomogram": per}


def _handler(run: Run, view: dict, table: pd.DataFrame):
    inputs = np.load(run.path("inputs.npy"))
    averages = class_averages(inputs, table["label"].to_numpy(int))
    del inputs
    sections = Sections(run.load(), thickness=max(1, int(round(view["radius"]))))
    data = json.dumps(view, separators=(",", ":")).encode()
    lock = threading.Lock()
    files = {"/thumbs.png": run.path("thumbs.png"), "/gallery.png": run.path("gallery.png")}
    cap = body_cap(len(table))

    class Handler(PageHandler):
        def get(self, path):
            if path in ("/", "/index.html"):
                self.send_page(PAGE)
            elif path == "/data.json":
                self.send_body(200, data, "application/json")
            elif path == "/averages.png":
                self.send_body(200, averages, "image/png")
            elif path.startswith("/section/"):
                parts = path[len("/section/"):].removesuffix(".png").split("/")
                if len(parts) != 2 or not all(p.isdigit() and len(p) < 7 for p in parts):
                    raise RequestError(400, "ask for /section/<tomogram>/<z>.png")
                t, z = int(parts[0]), int(parts[1])
                if t >= len(view["tomograms"]):
                    raise RequestError(404, f"no tomogram {t}")
                self.send_body(200, sections.png(t, z), "image/png")
            elif path in files:
                try:
                    self.send_body(200, files[path].read_bytes(), "image/png")
                except OSError:
                    raise RequestError(404, f"{files[path].name} is missing from the run folder") from None
            else:
                raise RequestError(404, f"no such page: {path}")

        def post(self, path):
            if path != "/export":
                raise RequestError(404, f"no such action: {path}")
            body = self.read_json(cap)
            if not isinstance(body, dict) or "indices" not in body:
                raise RequestError(400, "bad export request: send {\"indices\": [...]}")
            indices = parse_indices(body["indices"], len(table))
            try:
                with lock:
                    result = export_selection(run, indices, table)
            except InputError as e:
                raise RequestError(400, str(e)) from None
            except OSError as e:
                raise RequestError(500, f"could not write the selection: {e}") from None
            self.server.exports.append(result)  # type: ignore[attr-defined]
            if self.server.on_export:  # type: ignore[attr-defined]
                self.server.on_export(result)  # type: ignore[attr-defined]
            self.send_json(200, result)

    return Handler


def make_server(run_folder: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                on_export=None) -> PageServer:
    """A server for the run's page (not yet serving: call ``serve_forever``); port 0 picks a free port.
    Only the page itself can export (see :mod:`fewpick.webserver`)."""
    run = Run(run_folder)
    view, table = load_view(run)
    server = PageServer(host, port, _handler(run, view, table))
    server.exports = []  # type: ignore[attr-defined]
    server.on_export = on_export  # type: ignore[attr-defined]
    return server


PAGE = page_head("fewpick explore") + r"""<style>
 body{font:14px/1.4 system-ui,sans-serif;margin:0;display:flex;height:100vh;color:#222}
 #side{width:250px;padding:10px 12px;overflow:auto;border-right:1px solid #ddd;background:#fafafa;flex:none}
 #main{flex:1;position:relative;overflow:hidden;min-width:200px}
 #right{width:430px;flex:none;border-left:1px solid #ddd;padding:8px 10px;overflow:auto;background:#fafafa}
 #map{position:absolute;left:0;top:0;cursor:crosshair}
 h1{font-size:16px;margin:0 0 6px} h2{font-size:12px;margin:10px 0 4px;text-transform:uppercase;color:#555}
 .muted{color:#666;font-size:12px}
 .cls{display:flex;align-items:center;gap:5px;margin:1px 0;cursor:pointer;font-size:13px;padding:1px 2px}
 .cls.hot,.tile.hot{background:#fde68a}
 .sw{width:12px;height:12px;border-radius:6px;display:inline-block;flex:none}
 .av{width:28px;height:28px;flex:none;image-rendering:pixelated;background-image:url(averages.png);border:1px solid #ccc}
 #gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(58px,1fr));gap:4px}
 .tile{cursor:pointer;text-align:center;font-size:11px;border-radius:3px;padding:1px}
 .tile .av{width:52px;height:52px;margin:0 auto;border:3px solid}
 .tile.sel .av{outline:2px solid #000}
 #members{display:flex;flex-wrap:wrap;gap:2px;min-height:20px}
 #members div{width:40px;height:40px;image-rendering:pixelated;background-image:url(thumbs.png)}
 #slice{display:block;background:#111;cursor:pointer;width:100%;height:auto}
 button{margin:4px 4px 0 0;padding:5px 10px}
 #count{font-weight:600;font-size:18px}
 #tip{position:absolute;pointer-events:none;display:none;background:#fff;border:1px solid #888;padding:4px;
      font-size:11px;box-shadow:0 2px 6px rgba(0,0,0,.25)}
 #thumb{image-rendering:pixelated;display:block}
 #msg{margin-top:6px;font-size:12px;word-break:break-all}
 .err{color:#b00020}
</style></head><body>
<div id="side">
 <h1>fewpick explore</h1>
 <div class="muted" id="runname"></div>
 <p><span id="count">0</span> selected <span class="muted" id="total"></span></p>
 <button id="all">All classes</button><button id="clear">Clear</button>
 <button id="export" disabled>Export selected</button>
 <div id="msg"></div>
 <p class="muted">Tick classes, or drag a lasso on the map (hold Alt to remove); click a point to see it in its
  tomogram. Hover a class to see its members.</p>
 <div id="classes"></div>
</div>
<div id="main"><canvas id="map"></canvas><div id="tip"><div id="thumb"></div><span id="tiptext"></span></div></div>
<div id="right">
 <h2>Class averages</h2>
 <div id="gallery"></div>
 <h2>Members of <span id="mname">the class under the pointer</span></h2>
 <div id="members"></div>
 <h2>Tomogram</h2>
 <div class="muted"><select id="tomo"></select> section z <input type="range" id="z" min="0" max="0" value="0" style="width:150px">
  <span id="zv"></span> · <span id="inslab">0</span> candidates in this slab</div>
 <canvas id="slice" width="400" height="400"></canvas>
 <div class="muted">Wheel: move through z. Click a candidate to add it to the selection or remove it.</div>
</div>
<script>
"use strict";
const PALETTE=["#1f77b4","#ff7f0e","#2ca02c","#d62728","#9467bd","#8c564b","#e377c2","#7f7f7f","#bcbd22","#17becf",
 "#393b79","#e6550d","#31a354","#843c39","#7b4173","#3182bd","#fd8d3c","#74c476","#ad494a","#a55194"];
const colour=c=>c<=PALETTE.length?PALETTE[c-1]:`hsl(${Math.round((c*137.508)%360)},${c%2?70:45}%,${c%3?42:58}%)`;
let D=null, sel=null, px=null, py=null, lasso=null, W=0, H=0, hot=null, order=null;
const $=id=>document.getElementById(id);
const cv=$("map"), ctx=cv.getContext("2d"), tip=$("tip"), sc=$("slice"), sctx=sc.getContext("2d");
let cur={t:0,z:0,img:null,scale:1};
function layout(){
  const m=$("main"); W=m.clientWidth; H=m.clientHeight;
  const dpr=window.devicePixelRatio||1; cv.width=W*dpr; cv.height=H*dpr; cv.style.width=W+"px"; cv.style.height=H+"px";
  ctx.setTransform(dpr,0,0,dpr,0,0);
  if(!D) return;
  let x0=Infinity,x1=-Infinity,y0=Infinity,y1=-Infinity;
  for(let i=0;i<D.n;i++){x0=Math.min(x0,D.x[i]);x1=Math.max(x1,D.x[i]);y0=Math.min(y0,D.y[i]);y1=Math.max(y1,D.y[i]);}
  const pad=24, s=Math.min((W-2*pad)/Math.max(x1-x0,1e-9),(H-2*pad)/Math.max(y1-y0,1e-9));
  const ox=(W-s*(x1-x0))/2, oy=(H-s*(y1-y0))/2;
  for(let i=0;i<D.n;i++){px[i]=ox+s*(D.x[i]-x0); py[i]=oy+s*(y1-D.y[i]);}
  draw();
}
function draw(){
  ctx.clearRect(0,0,W,H);
  let any=false; for(let i=0;i<D.n;i++) if(sel[i]){any=true;break;}
  for(let pass=0;pass<3;pass++) for(let i=0;i<D.n;i++){
    const h=hot!==null&&D.cls[i]===hot, p=h?2:(sel[i]?1:0); if(p!==pass) continue;
    ctx.globalAlpha=(hot!==null&&!h)?0.12:(any&&!sel[i]?0.25:0.9); ctx.fillStyle=colour(D.cls[i]);
    ctx.beginPath(); ctx.arc(px[i],py[i],sel[i]||h?3.5:2.5,0,6.2832); ctx.fill();
    if(sel[i]){ctx.globalAlpha=1;ctx.strokeStyle="#000";ctx.lineWidth=0.8;ctx.stroke();}
  }
  ctx.globalAlpha=1;
  if(lasso&&lasso.length>1){ctx.strokeStyle="#000";ctx.setLineDash([4,3]);ctx.beginPath();ctx.moveTo(lasso[0][0],lasso[0][1]);
    for(const p of lasso) ctx.lineTo(p[0],p[1]); ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);}
  update(); drawSlice();
}
function update(){
  let n=0; for(let i=0;i<D.n;i++) n+=sel[i];
  $("count").textContent=n; $("export").disabled=n===0;
  for(const c of D.classes){
    let all=true,some=false; for(let i=0;i<D.n;i++) if(D.cls[i]===c){ if(sel[i]) some=true; else all=false; }
    const b=$("c"+c); b.checked=all; b.indeterminate=some&&!all; $("g"+c).classList.toggle("sel",all);
  }
}
// ---- slice viewer
function avStyle(el,c,size){ const k=order[c], n=D.classes.length;
  el.style.backgroundSize=`${n*size}px ${size}px`; el.style.backgroundPosition=`${-k*size}px 0px`; }
async function showSection(t,z){
  const sh=D.shapes[t]; if(!sh) return;
  z=Math.max(0,Math.min(sh[0]-1,Math.round(z))); cur.t=t; cur.z=z;
  $("tomo").value=t; $("z").max=sh[0]-1; $("z").value=z; $("zv").textContent=z;
  const im=new Image(); im.src=`section/${t}/${z}.png`; await im.decode();
  if(cur.t!==t||cur.z!==z) return;
  cur.img=im; cur.scale=im.width/sh[2]; sc.width=im.width; sc.height=im.height; drawSlice(); document.body.dataset.section=`${t}/${z}`;
}
function slab(){ const out=[]; if(!D) return out; for(let i=0;i<D.n;i++){ if(D.tomo[i]!==cur.t) continue;
  if(Math.abs(D.xyz[i][2]-cur.z)<=D.radius) out.push(i);} return out; }
function drawSlice(){
  if(!cur.img) return; sctx.drawImage(cur.img,0,0); const r=Math.max(3,D.radius*cur.scale); const inside=slab();
  $("inslab").textContent=inside.length;
  for(const i of inside){ const x=(D.xyz[i][0]+0.5)*cur.scale, y=(D.xyz[i][1]+0.5)*cur.scale;
    sctx.globalAlpha=(hot!==null&&D.cls[i]!==hot)?0.3:1;
    if(sel[i]){ sctx.strokeStyle="#fff"; sctx.lineWidth=4; sctx.beginPath(); sctx.arc(x,y,r,0,6.2832); sctx.stroke(); }
    sctx.strokeStyle=colour(D.cls[i]); sctx.lineWidth=2; sctx.beginPath(); sctx.arc(x,y,r,0,6.2832); sctx.stroke(); }
  sctx.globalAlpha=1;
}
sc.addEventListener("wheel",e=>{ e.preventDefault(); showSection(cur.t, cur.z+(e.deltaY>0?1:-1)); },{passive:false});
sc.addEventListener("click",e=>{ const r=sc.getBoundingClientRect(), k=sc.width/r.width;
  const x=(e.clientX-r.left)*k/cur.scale-0.5, y=(e.clientY-r.top)*k/cur.scale-0.5;
  let best=-1, bd=D.radius*D.radius; for(const i of slab()){ const d=(D.xyz[i][0]-x)**2+(D.xyz[i][1]-y)**2; if(d<bd){bd=d;best=i;} }
  if(best>=0){ sel[best]=sel[best]?0:1; draw(); } });
$("z").addEventListener("input",()=>showSection(cur.t,+$("z").value));
$("tomo").addEventListener("change",()=>{ const t=+$("tomo").value; showSection(t, Math.floor((D.shapes[t]||[1])[0]/2)); });
// ---- classes: hover shows members
function setHot(c){
  hot=c; document.querySelectorAll(".cls,.tile").forEach(e=>e.classList.toggle("hot", c!==null&&+e.dataset.c===c));
  const box=$("members"); box.innerHTML="";
  if(c!==null){ $("mname").textContent=`class ${c}`; const t=D.tile, k=40/t; let shown=0;
    for(let i=0;i<D.n&&shown<48;i++){ if(D.cls[i]!==c) continue; shown++;
      const d=document.createElement("div"), col=i%D.columns, row=Math.floor(i/D.columns);
      d.style.backgroundSize=`${D.columns*t*k}px ${Math.ceil(D.n/D.columns)*t*k}px`;
      d.style.backgroundPosition=`${-col*t*k}px ${-row*t*k}px`; d.title=`#${i}`; box.appendChild(d); } }
  draw();
}
function inside(x,y,poly){let r=false;for(let i=0,j=poly.length-1;i<poly.length;j=i++){
  const xi=poly[i][0],yi=poly[i][1],xj=poly[j][0],yj=poly[j][1];
  if(((yi>y)!==(yj>y))&&(x<(xj-xi)*(y-yi)/(yj-yi)+xi)) r=!r;} return r;}
function pos(e){const r=cv.getBoundingClientRect(); return [e.clientX-r.left,e.clientY-r.top];}
function nearest(x,y){let best=-1,bd=64; for(let i=0;i<D.n;i++){const d=(px[i]-x)**2+(py[i]-y)**2; if(d<bd){bd=d;best=i;}} return best;}
let removing=false;
cv.addEventListener("mousedown",e=>{lasso=[pos(e)]; removing=e.altKey; tip.style.display="none";});
window.addEventListener("mouseup",()=>{
  if(!lasso) return;
  if(lasso.length>2){ for(let i=0;i<D.n;i++) if(inside(px[i],py[i],lasso)) sel[i]=removing?0:1; }
  else { const b=nearest(lasso[0][0],lasso[0][1]); if(b>=0) showSection(D.tomo[b], D.xyz[b][2]); }
  lasso=null; draw();
});
cv.addEventListener("mousemove",e=>{
  const [x,y]=pos(e);
  if(lasso){lasso.push([x,y]); draw(); return;}
  const best=nearest(x,y);
  if(best<0){tip.style.display="none"; return;}
  const t=D.tile, k=3, col=best%D.columns, row=Math.floor(best/D.columns), th=$("thumb");
  th.style.width=th.style.height=(t*k)+"px";
  th.style.backgroundImage="url(thumbs.png)";
  th.style.backgroundSize=(D.columns*t*k)+"px "+(Math.ceil(D.n/D.columns)*t*k)+"px";
  th.style.backgroundPosition=(-col*t*k)+"px "+(-row*t*k)+"px";
  $("tiptext").textContent=`#${best} · class ${D.cls[best]} · ${D.tomograms[D.tomo[best]]} z ${Math.round(D.xyz[best][2])}`;
  tip.style.display="block";
  tip.style.left=Math.min(x+14,W-t*k-12)+"px"; tip.style.top=Math.min(y+14,H-t*k-30)+"px";
});
cv.addEventListener("mouseleave",()=>{tip.style.display="none";});
function setClass(c,on){for(let i=0;i<D.n;i++) if(D.cls[i]===c) sel[i]=on?1:0; draw();}
$("all").onclick=()=>{sel.fill(1);draw();};
$("clear").onclick=()=>{sel.fill(0);draw();};
$("export").onclick=async()=>{
  const idx=[]; for(let i=0;i<D.n;i++) if(sel[i]) idx.push(i);
  const msg=$("msg"); msg.className=""; msg.textContent="writing…";
  try{
    const r=await fetch("export",{method:"POST",headers:{"Content-Type":"application/json","X-Fewpick-Token":TOKEN},body:JSON.stringify({indices:idx})});
    const j=await r.json();
    if(!r.ok) throw new Error(j.error||r.statusText);
    msg.textContent=`exported ${j.count} particles to ${j.star} and ${j.coords.length} .coords file(s)`;
  }catch(err){msg.className="err"; msg.textContent="export failed: "+err.message;}
};
fetch("data.json").then(r=>r.json()).then(d=>{
  D=d; sel=new Uint8Array(D.n); px=new Float32Array(D.n); py=new Float32Array(D.n);
  order={}; D.classes.forEach((c,k)=>order[c]=k);
  $("runname").textContent=`${D.run}: ${D.tomograms.length} tomogram(s)`;
  $("total").textContent=`of ${D.n}`;
  const box=$("classes"), gal=$("gallery");
  for(const c of D.classes){
    let n=0; for(let i=0;i<D.n;i++) n+=D.cls[i]===c;
    const l=document.createElement("label"); l.className="cls"; l.dataset.c=c;
    l.innerHTML=`<input type="checkbox" id="c${c}" data-class="${c}"><span class="sw" style="background:${colour(c)}"></span><span class="av"></span>${c} <span class="muted">(${n})</span>`;
    avStyle(l.querySelector(".av"),c,28);
    l.querySelector("input").addEventListener("change",e=>setClass(c,e.target.checked));
    l.addEventListener("mouseenter",()=>setHot(c)); l.addEventListener("mouseleave",()=>setHot(null));
    box.appendChild(l);
    const g=document.createElement("div"); g.className="tile"; g.id="g"+c; g.dataset.c=c;
    g.innerHTML=`<div class="av" style="border-color:${colour(c)}"></div>${c} · ${n}`; avStyle(g.querySelector(".av"),c,52);
    g.addEventListener("mouseenter",()=>setHot(c)); g.addEventListener("mouseleave",()=>setHot(null));
    g.addEventListener("click",()=>setClass(c,!$("c"+c).checked));
    gal.appendChild(g);
  }
  D.tomograms.forEach((name,t)=>{const o=document.createElement("option"); o.value=t; o.textContent=name; $("tomo").appendChild(o);});
  layout(); showSection(0, Math.floor((D.shapes[0]||[1])[0]/2));
});
window.addEventListener("resize",()=>{if(D) layout();});
</script></body></html>
"""
