// Recorded streams (issue #24), beside player.js on the watch page: the
// list page gets a "Recorded" section of the archived streams (GET
// /api/vods), and ?vod=STREAM/EPOCH[&format=hls|dash] plays one on
// demand from its VOD manifests (/vod/STREAM/EPOCH/index.m3u8 or
// manifest.mpd) with the vendored hls.js or dash.js; &token= (a private
// stream's playback token) goes in their path, /t/{token}/vod/..., as
// player.js does for live streams.
// Plain ES2018, no build step; it only adds to the page.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const vod = params.get('vod');
  const token = params.get('token');
  const tokenPath = token ? '/t/' + encodeURIComponent(token) : '';
  if (vod) {
    play(vod, params.get('format') === 'dash' ? 'dash' : 'hls');
  } else if (!params.get('stream')) {
    list();
  }

  function $(id) { return document.getElementById(id); }

  function el(tag, props, ...children) {
    const e = Object.assign(document.createElement(tag), props || {});
    for (const c of children) {
      if (c != null) e.append(c);
    }
    return e;
  }

  function vodURL(v, format) {
    return '?vod=' + encodeURIComponent(v.stream) + '/' + encodeURIComponent(v.epoch) + '&format=' + format +
      (token ? '&token=' + encodeURIComponent(token) : '');
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.round(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  // ------------------------------------------------------------ the list

  function list() {
    const main = $('list-view');
    if (!main) return;
    const status = el('div', { id: 'vod-status', className: 'status' });
    const box = el('div', { id: 'vod-list', className: 'grid' });
    main.append(el('h1', { className: 'recorded' }, 'Recorded'), status, box);

    async function refresh() {
      try {
        const res = await fetch('/api/vods', { cache: 'no-store' });
        if (res.status === 404) { // no archive on this server
          status.textContent = 'No archive on this server.';
          return;
        }
        if (!res.ok) throw new Error('HTTP ' + res.status);
        render((await res.json()).vods || []);
        status.className = 'status';
        status.textContent = '';
      } catch (err) {
        status.className = 'status error';
        status.textContent = 'Cannot load the recordings: ' + err.message;
      }
      setTimeout(refresh, 30000);
    }

    function render(vods) {
      if (!vods.length) {
        box.replaceChildren(el('div', { className: 'empty' }, 'No recordings yet.'));
        box.style.display = 'block';
        return;
      }
      box.style.display = '';
      box.replaceChildren(...vods.map((v) => {
        const video = (v.renditions || []).filter((r) => r.type === 'video')
          .sort((a, b) => (b.height || 0) - (a.height || 0))[0];
        const meta = [
          new Date(v.start).toLocaleString(),
          fmtDuration(v.duration),
          video && video.width ? `${video.width}×${video.height}` : null,
        ].filter(Boolean).join(' · ');
        return el('div', { className: 'card vod' },
          el('div', null, el('span', { className: 'badge ended' }, 'recorded')),
          el('a', { className: 'name', href: vodURL(v, 'hls') }, v.stream),
          el('div', { className: 'meta' }, meta),
          el('div', { className: 'links' },
            el('a', { href: vodURL(v, 'hls') }, 'HLS'),
            el('a', { href: vodURL(v, 'dash') }, 'DASH')));
      }));
    }

    refresh();
  }

  // ------------------------------------------------------------ playback

  function play(id, format) {
    const [stream, epoch] = id.split('/');
    // player.js shows the list without ?stream=: this page is a VOD's.
    $('list-view').hidden = true;
    $('watch-view').hidden = false;
    document.title = stream + ' · recorded';
    $('title').textContent = stream + ' (recorded)';
    $('back').href = location.pathname;
    const ll = $('ll');
    if (ll && ll.closest('label')) ll.closest('label').hidden = true; // live only
    const v = { stream, epoch };
    $('fmt-hls').href = vodURL(v, 'hls');
    $('fmt-dash').href = vodURL(v, 'dash');
    $('fmt-' + format).className = 'on';

    const video = $('video');
    const base = tokenPath + '/vod/' + encodeURIComponent(stream) + '/' + encodeURIComponent(epoch) + '/';
    // State for automated browser tests, updated in place.
    const state = window.__vod = { format, error: null, playing: false, ended: false, stalls: 0 };
    function fail(msg) { state.error = String(msg); $('overlay').textContent = 'error: ' + msg; }
    video.addEventListener('playing', () => { state.playing = true; });
    video.addEventListener('waiting', () => { if (state.playing && !video.seeking) state.stalls++; });
    video.addEventListener('ended', () => { state.ended = true; });
    // Now and then dash.js lets the element reach the end of a VOD before
    // it ends the MediaSource (endOfStream): the element then sits paused
    // on the last frame, everything buffered, and no 'ended' comes (seen
    // in Chromium under load: TestBrowserVOD). Paused at the end is ended.
    const pausedAtEnd = () => {
      if (video.paused && Number.isFinite(video.duration) && video.duration > 0 &&
          video.currentTime >= video.duration - 0.1) state.ended = true;
    };
    for (const ev of ['pause', 'durationchange', 'timeupdate']) video.addEventListener(ev, pausedAtEnd);

    function loadScript(src) {
      return new Promise((resolve, reject) => {
        const s = el('script', { src, onload: resolve, onerror: () => reject(new Error('cannot load ' + src)) });
        document.head.append(s);
      });
    }
    // A VOD of an encrypted stream (issue #25) plays with EME ClearKey,
    // its keys from the license URL /api/vods gives. Null for a clear one.
    let licenseURL = null;
    const encrypted = fetch('/api/vods?stream=' + encodeURIComponent(stream), { cache: 'no-store' })
      .then((res) => (res.ok ? res.json() : {}), () => ({}))
      .then((l) => {
        const v = (l.vods || []).find((v) => v.epoch === epoch);
        if (v && v.encrypted) licenseURL = tokenPath + v.license;
      });
    if (format === 'dash') {
      // dash.js's EME module is a script of its own, loaded first (see
      // player.js).
      let protection = null;
      encrypted
        .then(() => licenseURL && loadScript('/static/vendor/dash.protection.min.js').then(() => { protection = window.dashjs; }))
        .then(() => loadScript('/static/vendor/dash.mediaplayer.min.js'))
        .then(() => {
          if (protection) dashjs.Protection = protection;
          const player = dashjs.MediaPlayer().create();
          player.on(dashjs.MediaPlayer.events.ERROR, (e) => fail('dash.js: ' + JSON.stringify(e.error || e)));
          if (licenseURL) player.setProtectionData({ 'org.w3.clearkey': { serverURL: licenseURL } });
          player.initialize(video, base + 'manifest.mpd', true);
          window.__vodPlayer = player;
        }, fail);
      return;
    }
    Promise.all([encrypted, loadScript('/static/vendor/hls.min.js')]).then(() => {
      if (!window.Hls || !Hls.isSupported()) {
        video.src = base + 'index.m3u8'; // native HLS (Safari)
        return;
      }
      const hls = new Hls(licenseURL ? { emeEnabled: true, drmSystems: { 'org.w3.clearkey': { licenseUrl: licenseURL } } } : {});
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) fail('hls.js: ' + d.type + ' ' + d.details); });
      hls.loadSource(base + 'index.m3u8');
      hls.attachMedia(video);
      window.__vodPlayer = hls;
    }, fail);
  }
})();
