// Charts drawn as inline SVG with createElementNS: no library, no canvas.
// Each chart has a <title> and an aria-label summing it up, and series
// colours come from CSS classes (s-0, s-1, ...) so they follow the theme.

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) {
    if (c === null || c === undefined) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const W = 480;
const H = 200;
const PAD = { l: 48, r: 12, t: 12, b: 28 };

function frame(title, summary) {
  return s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}. ${summary}`, preserveAspectRatio: 'none' }, s('title', null, title));
}

// niceMax rounds up to 1, 2 or 5 times a power of ten.
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function hhmm(t) {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function axes(svg, max, times, fmt, integer) {
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
  // Gridlines at round values: 2, 20, 200 split in 4; 1, 5, 10, 50 in 5;
  // counts under 5 one line per unit.
  const mant = max / Math.pow(10, Math.floor(Math.log10(max)));
  const n = integer && max <= 5 ? max : Math.abs(mant - 2) < 1e-9 ? 4 : 5;
  for (let i = 0; i <= n; i++) {
    const y = y0 - ((y0 - y1) * i) / n;
    svg.appendChild(s('line', { x1: x0, x2: x1, y1: y, y2: y, class: 'grid' }));
    svg.appendChild(s('text', { x: x0 - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' }, fmt((max * i) / n)));
  }
  if (times.length) {
    const n = times.length;
    const step = Math.max(1, Math.ceil(n / 6));
    for (let i = 0; i < n; i += step) {
      const x = x0 + ((x1 - x0) * (i + 0.5)) / n;
      svg.appendChild(s('text', { x, y: H - 8, class: 'tick', 'text-anchor': 'middle' }, hhmm(times[i])));
    }
  }
}

// stackedBars draws one bar per bucket, stacked by series.
// buckets: [{time, values: {series: n}}]; series: names in stack order.
export function stackedBars(title, buckets, series) {
  let max = 0, total = 0;
  for (const b of buckets) {
    let sum = 0;
    for (const k of series) sum += b.values[k] || 0;
    max = Math.max(max, sum);
    total += sum;
  }
  max = niceMax(max);
  const svg = frame(title, `${total} in ${buckets.length} intervals; highest ${max} or less`);
  axes(svg, max, buckets.map((b) => b.time), (v) => String(Math.round(v)), true);
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
  const bw = (x1 - x0) / Math.max(1, buckets.length);
  buckets.forEach((b, i) => {
    let y = y0;
    series.forEach((k, si) => {
      const v = b.values[k] || 0;
      if (!v) return;
      const hgt = ((y0 - y1) * v) / max;
      y -= hgt;
      svg.appendChild(s('rect', { x: x0 + i * bw + bw * 0.1, y, width: Math.max(1, bw * 0.8), height: hgt, class: `s-${si}` },
        s('title', null, `${hhmm(b.time)} ${k}: ${v}`)));
    });
  });
  return svg;
}

// lines draws one polyline per series over the buckets' times.
// series: [{name, points: [number|null]}], times: [Date], fmt formats values.
export function lines(title, times, series, fmt, integer) {
  let max = 0;
  for (const se of series) for (const v of se.points) if (v !== null && v > max) max = v;
  max = niceMax(max);
  const svg = frame(title, series.map((se) => `${se.name} up to ${fmt(Math.max(0, ...se.points.filter((v) => v !== null)))}`).join('; '));
  axes(svg, max, times, fmt, integer);
  const x0 = PAD.l, x1 = W - PAD.r, y0 = H - PAD.b, y1 = PAD.t;
  const n = Math.max(1, times.length);
  const none = (v) => v === null || v === undefined;
  series.forEach((se, si) => {
    // A gap (no value) breaks the line; a point with no neighbour gets a dot.
    let d = '';
    se.points.forEach((v, i) => {
      if (none(v)) return;
      const x = x0 + ((x1 - x0) * (i + 0.5)) / n;
      const y = y0 - ((y0 - y1) * v) / max;
      d += `${none(se.points[i - 1]) ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`;
      if (none(se.points[i - 1]) && none(se.points[i + 1])) {
        svg.appendChild(s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: `s-${si}` }, s('title', null, `${se.name}: ${fmt(v)}`)));
      }
    });
    if (d) svg.appendChild(s('path', { d, class: `line s-${si}` }));
  });
  return svg;
}

// meters draws one horizontal bar per item, value in 0..1.
export function meters(title, items) {
  const rowH = 26;
  const hgt = Math.max(rowH, items.length * rowH) + 8;
  const svg = s('svg', { viewBox: `0 0 ${W} ${hgt}`, class: 'chart meters', role: 'img', 'aria-label': `${title}. ${items.map((it) => `${it.label}: ${(it.value * 100).toFixed(1)}%`).join('; ')}` }, s('title', null, title));
  const lx = 170, rx = W - 56;
  items.forEach((it, i) => {
    const y = 4 + i * rowH;
    const label = it.label.length > 26 ? `${it.label.slice(0, 25)}…` : it.label;
    svg.appendChild(s('text', { x: lx - 8, y: y + 16, class: 'tick', 'text-anchor': 'end' }, label, s('title', null, it.label)));
    svg.appendChild(s('rect', { x: lx, y: y + 4, width: rx - lx, height: rowH - 10, class: 'track' }));
    svg.appendChild(s('rect', { x: lx, y: y + 4, width: Math.max(0, (rx - lx) * it.value), height: rowH - 10, class: it.value >= 0.99 ? 's-0' : it.value >= 0.9 ? 's-1' : 's-2' }));
    svg.appendChild(s('text', { x: rx + 6, y: y + 16, class: 'tick' }, `${(it.value * 100).toFixed(1)}%`));
  });
  return svg;
}

// legend lists series names with their colours.
export function legend(series) {
  const ul = document.createElement('ul');
  ul.className = 'legend';
  series.forEach((name, i) => {
    const li = document.createElement('li');
    const sw = document.createElement('span');
    sw.className = `swatch s-${i}`;
    sw.setAttribute('aria-hidden', 'true');
    li.appendChild(sw);
    li.appendChild(document.createTextNode(name));
    ul.appendChild(li);
  });
  return ul;
}
