(function () {
  'use strict';
  var D = TUNE_DATA;
  var S = { metric: D.metric, mode: D.mode, sort: 'i', dir: 1, page: 0, filter: '' };
  var PAGE = 50;
  var gen = null;
  window.tuneRenders = 0;

  function $(id) { return document.getElementById(id); }
  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'number') return String(v);
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1e6 || a < 1e-4) return v.toExponential(5).replace(/\.?0+e/, 'e');
    return String(+v.toPrecision(6));
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c];
    });
  }
  function k() { return D.metrics.indexOf(S.metric); }
  function better(a, b) { return S.mode === 'min' ? a < b : a > b; }
  function lastOf(t) { var i = k(); return t.last && i >= 0 ? t.last[i] : null; }
  var STATUS_COLOR = { TERMINATED: '#4c72b0', ERROR: '#d62728', RUNNING: '#2ca02c', PAUSED: '#999', PENDING: '#bbb' };

  function canvas(id, h) {
    var c = $(id);
    var w = Math.max(300, c.parentNode.clientWidth || 900);
    var r = window.devicePixelRatio || 1;
    c.width = Math.round(w * r); c.height = Math.round(h * r);
    c.style.width = w + 'px'; c.style.height = h + 'px';
    var x = c.getContext('2d');
    x.setTransform(r, 0, 0, r, 0, 0);
    x.clearRect(0, 0, w, h);
    x.font = '11px sans-serif';
    return { x: x, w: w, h: h };
  }
  function extent(vals) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < vals.length; i++) {
      var v = vals[i];
      if (v === null || !isFinite(v)) continue;
      if (v < lo) lo = v; if (v > hi) hi = v;
    }
    if (lo === Infinity) return [0, 1];
    if (lo === hi) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  }
  // A plot frame: margins, axes with 5 ticks; returns the coordinate mappings.
  function frame(c, xr, yr, xlabel, ylabel) {
    var L = 64, R = 16, T = 10, B = 34, x = c.x;
    var W = c.w - L - R, H = c.h - T - B;
    var fx = function (v) { return L + (v - xr[0]) / (xr[1] - xr[0]) * W; };
    var fy = function (v) { return T + H - (v - yr[0]) / (yr[1] - yr[0]) * H; };
    x.strokeStyle = '#ccc'; x.fillStyle = '#555'; x.lineWidth = 1;
    x.beginPath(); x.moveTo(L, T); x.lineTo(L, T + H); x.lineTo(L + W, T + H); x.stroke();
    x.textAlign = 'right';
    for (var i = 0; i <= 4; i++) {
      var v = yr[0] + (yr[1] - yr[0]) * i / 4, y = fy(v);
      x.fillText(fmt(+v.toPrecision(3)), L - 4, y + 4);
      x.strokeStyle = '#f0f0f0'; x.beginPath(); x.moveTo(L + 1, y); x.lineTo(L + W, y); x.stroke();
    }
    x.textAlign = 'center';
    for (i = 0; i <= 4; i++) {
      v = xr[0] + (xr[1] - xr[0]) * i / 4;
      x.fillText(fmt(+v.toPrecision(3)), fx(v), T + H + 14);
    }
    x.fillText(xlabel, L + W / 2, T + H + 30);
    x.save(); x.translate(12, T + H / 2); x.rotate(-Math.PI / 2); x.fillText(ylabel, 0, 0); x.restore();
    return { fx: fx, fy: fy, L: L, T: T, W: W, H: H };
  }

  function history() {
    var c = canvas('history', 300), T = D.trials;
    var ys = T.map(lastOf);
    var f = frame(c, extent(T.map(function (t) { return t.i; })), extent(ys), 'trial', S.metric || '');
    var x = c.x, best = null;
    for (var i = 0; i < T.length; i++) {
      var y = ys[i];
      if (y === null) continue;
      x.fillStyle = STATUS_COLOR[T[i].status] || '#4c72b0';
      x.fillRect(f.fx(T[i].i) - 2, f.fy(y) - 2, 4, 4);
    }
    x.strokeStyle = '#ff7f0e'; x.lineWidth = 2; x.beginPath();
    var started = false;
    for (i = 0; i < T.length; i++) {
      y = ys[i];
      if (y === null) continue;
      if (best === null || better(y, best)) best = y;
      var px = f.fx(T[i].i), py = f.fy(best);
      if (!started) { x.moveTo(px, py); started = true; } else x.lineTo(px, py);
    }
    x.stroke();
  }

  function curves() {
    var c = canvas('curves', 340), T = D.trials, m = k();
    if (m < 0) return;
    var xs = [], ys = [];
    T.forEach(function (t) { xs = xs.concat([t.it[0], t.it[t.it.length - 1]]); ys.push.apply(ys, t.c[m] || []); });
    var f = frame(c, extent(xs), extent(ys), 'training_iteration', S.metric);
    var x = c.x, bestT = null, bestV = null;
    x.lineWidth = 1;
    x.globalAlpha = T.length > 500 ? 0.25 : T.length > 50 ? 0.6 : 1;
    T.forEach(function (t) {
      var v = t.c[m]; if (!v || !v.length) return;
      x.strokeStyle = t.status === 'ERROR' ? '#d62728' : t.status === 'RUNNING' ? '#2ca02c' : t.pruned ? '#aaaaaa' : '#4c72b0';
      x.beginPath();
      var started = false;
      for (var j = 0; j < v.length; j++) {
        if (v[j] === null) continue;
        var px = f.fx(t.it[j]), py = f.fy(v[j]);
        if (!started) { x.moveTo(px, py); started = true; } else x.lineTo(px, py);
      }
      x.stroke();
      var l = lastOf(t);
      if (l !== null && (bestV === null || better(l, bestV))) { bestV = l; bestT = t; }
    });
    x.globalAlpha = 1;
    x.strokeStyle = '#888';
    T.forEach(function (t) {
      if (!t.pruned) return;
      var v = t.c[m], j = v.length - 1;
      if (j < 0 || v[j] === null) return;
      var px = f.fx(t.it[j]), py = f.fy(v[j]);
      x.beginPath(); x.moveTo(px - 3, py - 3); x.lineTo(px + 3, py + 3); x.moveTo(px + 3, py - 3); x.lineTo(px - 3, py + 3); x.stroke();
    });
    if (bestT) {
      x.strokeStyle = '#ff7f0e'; x.lineWidth = 2.5; x.beginPath();
      bestT.c[m].forEach(function (v, j) { if (v === null) return; var px = f.fx(bestT.it[j]), py = f.fy(v); if (j === 0) x.moveTo(px, py); else x.lineTo(px, py); });
      x.stroke();
    }
  }

  function color(t) {
    // Light (worse) to dark (better).
    var a = [253, 231, 37], b = [68, 1, 84];
    return 'rgb(' + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * t); }).join(',') + ')';
  }

  function parallel() {
    var c = canvas('parallel', 320), T = D.trials, P = D.params, m = k();
    var axes = P.map(function (p, i) {
      var vals = T.map(function (t) { return t.p[i]; });
      if (p.numeric && p.log) vals = vals.map(function (v) { return v > 0 ? Math.log10(v) : null; });
      var e = p.numeric ? extent(vals) : [-0.5, Math.max(0.5, p.cats.length - 0.5)];
      return { name: p.name + (p.log ? ' (log)' : ''), vals: vals, e: e, p: p };
    });
    if (m >= 0) axes.push({ name: S.metric, vals: T.map(lastOf), e: extent(T.map(lastOf)), p: null });
    if (!axes.length) return;
    var x = c.x, L = 40, R = 40, top = 26, bottom = 20, H = c.h - top - bottom;
    var step = axes.length > 1 ? (c.w - L - R) / (axes.length - 1) : 0;
    var ax = function (i) { return L + i * step; };
    var ay = function (a, v) { return top + H - (v - a.e[0]) / (a.e[1] - a.e[0]) * H; };
    var order = [], score = T.map(lastOf);
    for (var i = 0; i < T.length; i++) if (score[i] !== null) order.push(i);
    order.sort(function (a, b) { return better(score[a], score[b]) ? 1 : better(score[b], score[a]) ? -1 : 0; });
    x.globalAlpha = T.length > 1000 ? 0.35 : 0.8;
    order.forEach(function (ti, rank) {
      x.strokeStyle = color(order.length > 1 ? rank / (order.length - 1) : 1);
      x.beginPath();
      var started = false;
      axes.forEach(function (a, j) {
        var v = a.vals[ti];
        if (v === null || v === undefined) { started = false; return; }
        var px = ax(j), py = ay(a, v);
        if (!started) { x.moveTo(px, py); started = true; } else x.lineTo(px, py);
      });
      x.stroke();
    });
    x.globalAlpha = 1;
    axes.forEach(function (a, j) {
      var px = ax(j);
      x.strokeStyle = '#333'; x.beginPath(); x.moveTo(px, top); x.lineTo(px, top + H); x.stroke();
      x.fillStyle = '#222'; x.textAlign = 'center';
      x.fillText(a.name, Math.min(Math.max(px, 50), c.w - 50), top - 12);
      x.fillStyle = '#666';
      if (a.p && !a.p.numeric) {
        a.p.cats.forEach(function (cat, ci) { x.fillText(cat, px, ay(a, ci) - 3); });
      } else {
        var lo = a.e[0], hi = a.e[1], lg = a.p && a.p.log;
        x.fillText(fmt(+(lg ? Math.pow(10, hi) : hi).toPrecision(3)), px, top - 2);
        x.fillText(fmt(+(lg ? Math.pow(10, lo) : lo).toPrecision(3)), px, top + H + 12);
      }
    });
  }

  function importance() {
    var list = (D.importance || {})[S.metric + '/' + S.mode] || [];
    if (!list.length) { $('importance').innerHTML = '<p class="note">Needs at least 4 trials with results.</p>'; return; }
    var max = list[0][1] || 1;
    $('importance').innerHTML = list.map(function (e) {
      return '<div class="bar"><span class="name" title="' + esc(e[0]) + '">' + esc(e[0]) + '</span><span class="fill" style="width:' +
        Math.round(300 * (e[1] || 0) / max) + 'px"></span><span>' + fmt(e[1]) + '</span></div>';
    }).join('');
  }

  function table() {
    var T = D.trials, m = D.metrics, P = D.params;
    var cols = [{ key: 'id', name: 'trial', get: function (t) { return t.id; } },
      { key: 'status', name: 'status', get: function (t) { return t.status; } },
      { key: 'iter', name: 'iter', num: true, get: function (t) { return t.iter; } }];
    m.forEach(function (name, i) { cols.push({ key: 'm' + i, name: name, num: true, get: function (t) { return t.last ? t.last[i] : null; } }); });
    P.forEach(function (p, i) {
      cols.push({ key: 'p' + i, name: p.name, num: p.numeric, get: function (t) { var v = t.p[i]; return p.numeric || v === null ? v : p.cats[v]; } });
    });
    cols.push({ key: 'time', name: 'total time (s)', num: true, get: function (t) { return t.time; } });
    var f = S.filter.toLowerCase();
    var rows = T.filter(function (t) {
      if (!f) return true;
      return (t.id + ' ' + t.status + ' ' + JSON.stringify(t.config) + ' ' + (t.error || '')).toLowerCase().indexOf(f) >= 0;
    });
    var col = cols.filter(function (c) { return c.key === S.sort; })[0] || null;
    if (col) {
      rows = rows.slice().sort(function (a, b) {
        var x = col.get(a), y = col.get(b);
        if (x === y) return a.i - b.i;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * S.dir;
      });
    }
    var pages = Math.max(1, Math.ceil(rows.length / PAGE));
    if (S.page >= pages) S.page = pages - 1;
    var shown = rows.slice(S.page * PAGE, S.page * PAGE + PAGE);
    var h = '<table><thead><tr>' + cols.map(function (c) {
      return '<th data-key="' + c.key + '">' + esc(c.name) + (S.sort === c.key ? (S.dir > 0 ? ' ▲' : ' ▼') : '') + '</th>';
    }).join('') + '</tr></thead><tbody>';
    shown.forEach(function (t) {
      h += '<tr class="' + t.status + '" data-trial="' + t.i + '"' + (t.error ? ' title="' + esc(t.error) + '"' : '') + '>' + cols.map(function (c) {
        var v = c.get(t);
        return '<td' + (c.num ? ' class="n"' : '') + '>' + esc(c.num ? fmt(v) : v === null || v === undefined ? '' : v) + (c.key === 'status' && t.pruned ? ' (pruned)' : '') + '</td>';
      }).join('') + '</tr>';
    });
    h += '</tbody></table>';
    $('table').innerHTML = h;
    $('pager').innerHTML = rows.length + ' trials' + (f ? ' match' : '') + ' · page ' + (S.page + 1) + '/' + pages +
      ' <button id="prev">prev</button><button id="next">next</button>';
    $('prev').onclick = function () { if (S.page > 0) { S.page--; table(); } };
    $('next').onclick = function () { if (S.page < pages - 1) { S.page++; table(); } };
    Array.prototype.forEach.call(document.querySelectorAll('th[data-key]'), function (th) {
      th.onclick = function () {
        var key = th.getAttribute('data-key');
        if (S.sort === key) S.dir = -S.dir; else { S.sort = key; S.dir = 1; }
        table();
      };
    });
  }

  function header() {
    document.title = 'tune: ' + D.name;
    $('title').textContent = D.name + ' (' + D.trainable + ')';
    var counts = Object.keys(D.counts).filter(function (s) { return D.counts[s] > 0; })
      .map(function (s) { return D.counts[s] + ' ' + s; }).join(', ');
    var best = null;
    D.trials.forEach(function (t) { var v = lastOf(t); if (v !== null && (best === null || better(v, lastOf(best)))) best = t; });
    $('summary').innerHTML = '<span>' + D.trials.length + ' trials (' + esc(counts || 'none') + ')</span>' +
      '<span>' + (D.finished ? 'finished' : 'not finished') + '</span>' +
      (best ? '<span id="best">best: ' + esc(best.id) + ' with ' + esc(S.metric) + '=' + fmt(lastOf(best)) + '</span>' : '') +
      (D.thinned ? '<span>curves thinned to fit the page</span>' : '') +
      '<span class="note">' + esc(D.dir) + '</span>';
    var sel = $('metric');
    if (sel.options.length !== D.metrics.length) {
      sel.innerHTML = D.metrics.map(function (n) { return '<option>' + esc(n) + '</option>'; }).join('');
    }
    sel.value = S.metric; $('mode').value = S.mode;
  }

  function render() {
    var t0 = performance.now();
    header(); history(); curves(); parallel(); importance(); table();
    var ms = performance.now() - t0;
    window.tuneRenderMs = ms;
    window.tuneRenders++;
    $('timing').textContent = 'rendered ' + D.trials.length + ' trials in ' + ms.toFixed(0) + ' ms';
    return ms;
  }

  $('metric').onchange = function () { S.metric = this.value; render(); };
  $('mode').onchange = function () { S.mode = this.value; render(); };
  $('filter').oninput = function () { S.filter = this.value; S.page = 0; table(); };
  var resizeTimer = null;
  window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 150); });
  var last = render();

  if (TUNE_LIVE) {
    var poll = function () {
      var url = TUNE_LIVE + (gen === null ? '' : '?since=' + gen);
      fetch(url, { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (msg) {
        gen = msg.gen;
        if (msg.data) {
          var keep = S.metric;
          D = msg.data;
          if (D.metrics.indexOf(keep) >= 0) S.metric = keep;
          last = render();
        }
        $('live').textContent = 'live · updated ' + new Date().toLocaleTimeString();
      }).catch(function () {
        $('live').textContent = 'live · the server does not answer';
      }).then(function () {
        setTimeout(poll, Math.max(1000, 5 * last));
      });
    };
    poll();
  }
})();
