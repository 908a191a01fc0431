// Dashboard: every public stream from /api/streams (private ones are left
// out: a viewer of one comes with its name and a token), and on a PoP node of a fleet
// the origins from /api/origins, refreshed every 2 s.
// Plain ES2018, no build step.
'use strict';

(function () {
  const DASH = '–'; // shown for "no data"
  const rows = document.getElementById('rows');
  const refreshed = document.getElementById('refreshed');
  const apiError = document.getElementById('api-error');
  const floorLabel = document.getElementById('fps-floor');
  const fleet = document.getElementById('fleet');
  const fleetStatus = document.getElementById('fleet-status');
  const originRows = document.getElementById('origin-rows');

  function el(tag, props, ...children) {
    const e = Object.assign(document.createElement(tag), props || {});
    for (const c of children) {
      if (c != null) e.append(c);
    }
    return e;
  }

  function num(x) { return typeof x === 'number' && isFinite(x); }
  function kbps(bps) { return Math.round(bps / 1000) + ' kbps'; }
  function pct(x) { return (x * 100).toFixed(1) + '%'; }

  function fmtUptime(s) {
    s = Math.max(0, Math.floor(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  // One line per rendition. Frame rate and bitrate are the ingest figures:
  // recent_* when known (non-zero), else the declared value; "N/A" when the
  // stream is not live.
  function renditionLine(r, live, fpsFloor) {
    const line = el('div', { className: 'rend' });
    const kind = r.type === 'audio' ? 'audio' : 'video';
    line.append(el('span', { className: 'kind' }, (r.id || kind) + ' '));

    let shape;
    if (kind === 'video') shape = r.width && r.height ? `${r.width}x${r.height}` : '?x?';
    else shape = (r.sample_rate ? (r.sample_rate / 1000) + ' kHz' : '? kHz') + (r.channels ? ` ${r.channels}ch` : '');
    line.append(shape + ' ' + (r.codec || '?') + ' · ');

    if (!live) {
      line.append('N/A');
      return line;
    }
    if (kind === 'video') {
      const fps = r.recent_fps > 0 ? r.recent_fps : r.fps;
      if (num(fps) && fps > 0) {
        const low = num(fpsFloor) && fps < fpsFloor;
        line.append(el('span', { className: low ? 'low' : '', title: low ? `below the ${fpsFloor} fps floor` : '' },
          (Math.round(fps * 10) / 10) + ' fps'), ' · ');
      } else {
        line.append('? fps · ');
      }
    }
    const br = r.recent_bitrate > 0 ? r.recent_bitrate : r.bitrate;
    line.append(num(br) && br > 0 ? kbps(br) : '? kbps');
    return line;
  }

  // Where a stream lives in a fleet of origins: each origin serving it,
  // in the order PoPs fetch from them (the first in bold).
  function fleetCell(placements) {
    const cell = el('div');
    if (!placements || !placements.length) {
      cell.append(el('span', { className: 'muted' }, DASH));
      return cell;
    }
    placements.forEach((p, i) => {
      const name = i === 0 ? el('strong', { title: 'PoPs fetch from this origin first' }, p.origin) : p.origin;
      cell.append(el('div', { title: 'epoch ' + p.epoch }, name, ' ' + (p.zone ? p.zone + ' · ' : '') + p.role));
    });
    return cell;
  }

  // Column labels, also used as data-label for the narrow-screen card layout.
  const LABELS = ['Stream', 'Status', 'Uptime', 'Ingest', 'Origins', 'Viewers', 'First frame p50 / p90',
    'Stall rate (1 min)', 'PoP hit ratio', 'Origin fetches'];

  function row(s, fpsFloor) {
    const q = s.qoe || null;
    const pop = s.pop || null;
    const rends = (s.renditions || []).slice()
      .sort((a, b) => (a.type === b.type ? 0 : a.type === 'video' ? -1 : 1));

    const watch = '/?stream=' + encodeURIComponent(s.name) + '&format=hls';
    const started = s.started ? new Date(s.started) : null;

    const ingest = el('div'); // one box, so the narrow (flex) layout keeps lines stacked
    if (!rends.length) {
      ingest.append(el('span', { className: 'muted' }, 'N/A'));
    } else {
      // An ended stream still lists its renditions, with N/A figures.
      rends.forEach((r) => ingest.append(renditionLine(r, s.live, fpsFloor)));
    }

    let firstFrame = DASH;
    if (q && (q.first_frame_ms_p50 > 0 || q.first_frame_ms_p90 > 0)) {
      const f = (x) => (x > 0 ? Math.round(x) : DASH);
      firstFrame = `${f(q.first_frame_ms_p50)} / ${f(q.first_frame_ms_p90)} ms`;
    }

    let stall = DASH;
    if (q && q.users_1m > 0) {
      stall = pct((q.stalled_users_1m || 0) / q.users_1m) + ` (${q.stalled_users_1m || 0}/${q.users_1m})`;
    }

    const tr = el('tr', null,
      el('td', { className: 'nowrap' }, el('a', { href: watch }, s.name)),
      el('td', null, el('span', { className: s.live ? 'badge live' : 'badge ended' }, s.live ? 'live' : 'ended')),
      el('td', { className: 'num', title: started ? 'started ' + started.toLocaleString() : '' },
        num(s.uptime_seconds) ? fmtUptime(s.uptime_seconds) : DASH),
      el('td', null, ingest),
      el('td', { className: 'nowrap' }, fleetCell(s.fleet)),
      el('td', { className: 'num' }, num(s.viewers) ? String(s.viewers) : DASH),
      el('td', { className: 'num' }, firstFrame),
      el('td', { className: 'num' }, stall),
      el('td', { className: 'num', title: pop && num(pop.requests) ? pop.requests + ' requests' : '' },
        pop && num(pop.hit_ratio) ? pct(pop.hit_ratio) : DASH),
      el('td', { className: 'num' }, pop && num(pop.origin_fetches) ? String(pop.origin_fetches) : DASH));
    Array.from(tr.cells).forEach((td, i) => { td.dataset.label = LABELS[i]; });
    return tr;
  }

  function render(data) {
    const fpsFloor = data.fps_floor;
    floorLabel.textContent = num(fpsFloor) ? ` · frame rates below ${fpsFloor} fps in red` : '';
    const streams = (data.streams || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    if (!streams.length) {
      rows.replaceChildren(el('tr', null, el('td', { colSpan: LABELS.length, className: 'muted' }, 'No streams.')));
      return;
    }
    rows.replaceChildren(...streams.map((s) => row(s, fpsFloor)));
  }

  // The origins of the fleet, as the node's directory has them; the
  // section stays hidden on a node without one (404).
  const ORIGIN_LABELS = ['Origin', 'Zone', 'Streams (primary)', 'Load', 'Ingest', 'Transcoding', 'Reported'];

  function renderOrigins(data) {
    fleet.hidden = false;
    fleetStatus.className = data.current ? '' : 'error';
    fleetStatus.textContent = data.current
      ? 'Directory current'
      : 'Directory stale (etcd unreachable): the last known state, no new placements';
    const origins = data.origins || [];
    if (!origins.length) {
      originRows.replaceChildren(el('tr', null, el('td', { colSpan: ORIGIN_LABELS.length, className: 'muted' }, 'No origins.')));
      return;
    }
    originRows.replaceChildren(...origins.map((o) => {
      const age = o.updated ? Math.max(0, Math.round((Date.now() - new Date(o.updated)) / 1000)) + ' s ago' : DASH;
      const tr = el('tr', null,
        el('td', { className: 'nowrap', title: o.url }, o.id),
        el('td', null, o.zone || DASH),
        el('td', { className: 'num' }, `${o.streams} (${o.primaries})`),
        el('td', { className: 'num', title: 'in typical streams, as placement weighs it' }, num(o.score) ? o.score.toFixed(1) : DASH),
        el('td', { className: 'num' }, `${o.ingest_streams} · ` + kbps(o.ingest_bps || 0)),
        el('td', { className: 'num' }, num(o.transcode_cpu) ? o.transcode_cpu.toFixed(1) + ' cores' : DASH),
        el('td', { className: 'num' }, age));
      Array.from(tr.cells).forEach((td, i) => { td.dataset.label = ORIGIN_LABELS[i]; });
      return tr;
    }));
  }

  async function refreshOrigins() {
    const res = await fetch('/api/origins', { cache: 'no-store' });
    if (res.status === 404) {
      fleet.hidden = true;
      return;
    }
    if (!res.ok) throw new Error('origins: HTTP ' + res.status);
    renderOrigins(await res.json());
  }

  async function refresh() {
    try {
      const res = await fetch('/api/streams', { cache: 'no-store' });
      if (!res.ok) throw new Error('HTTP ' + res.status + ' ' + (await res.text()).slice(0, 200));
      render(await res.json());
      await refreshOrigins();
      refreshed.textContent = 'Last refresh ' + new Date().toLocaleTimeString();
      apiError.hidden = true;
    } catch (err) {
      // Keep the last good tables on screen; just say they are stale.
      apiError.textContent = 'API error: ' + err.message + ' (figures above are from the last good refresh)';
      apiError.hidden = false;
    }
    setTimeout(refresh, 2000); // chained, so a slow API never piles up requests
  }

  refresh();
})();
