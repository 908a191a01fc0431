// Watch page: the list of live streams (no ?stream=), or an HLS/DASH player
// with a stats overlay and QoE beacons (?stream=NAME&format=hls|dash). The
// players play in low-latency mode unless &ll=0.
// Plain ES2018, no build step. The players are vendored under /static/vendor/.
'use strict';

(function () {
  const params = new URLSearchParams(location.search);
  const stream = params.get('stream');
  // A playback token (?token=, issue #23) for a private stream: it goes in
  // the path of the manifests, /t/{token}/live/..., so that every URI in
  // them, relative, carries it too.
  const token = params.get('token');
  if (stream) {
    watch(stream, params.get('format') === 'dash' ? 'dash' : 'hls', params.get('ll') !== '0');
  } else {
    list();
  }

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  // el('a', {href: '/x', className: 'y'}, 'text', childNode, ...)
  function el(tag, props, ...children) {
    const e = Object.assign(document.createElement(tag), props || {});
    for (const c of children) {
      if (c != null) e.append(c);
    }
    return e;
  }

  // The watch page of stream name; lowLatency false adds &ll=0. The
  // page's token goes along.
  function watchURL(name, format, lowLatency) {
    return '?stream=' + encodeURIComponent(name) + '&format=' + format +
      (lowLatency === false ? '&ll=0' : '') +
      (token ? '&token=' + encodeURIComponent(token) : '');
  }

  function fmtUptime(s) {
    s = Math.max(0, Math.floor(s || 0));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  // ------------------------------------------------------------ stream list

  function list() {
    $('list-view').hidden = false;
    const status = $('list-status');
    const box = $('list');

    async function refresh() {
      try {
        const res = await fetch('/api/streams', { cache: 'no-store' });
        if (!res.ok) throw new Error('HTTP ' + res.status);
        const data = await res.json();
        const live = (data.streams || []).filter((s) => s.live)
          .sort((a, b) => a.name.localeCompare(b.name));
        render(live);
        status.className = 'status';
        status.textContent = 'Updated ' + new Date().toLocaleTimeString();
      } catch (err) {
        status.className = 'status error';
        status.textContent = 'Cannot load the stream list: ' + err.message;
      }
      // Chained timeout rather than setInterval: a slow API never piles up requests.
      setTimeout(refresh, 5000);
    }

    function render(streams) {
      if (!streams.length) {
        box.replaceChildren(el('div', { className: 'empty' }, 'No live streams right now.'));
        box.style.display = 'block';
        return;
      }
      box.style.display = '';
      box.replaceChildren(...streams.map((s) => {
        const video = (s.renditions || []).filter((r) => r.type === 'video')
          .sort((a, b) => (b.height || 0) - (a.height || 0))[0];
        const meta = [
          'up ' + fmtUptime(s.uptime_seconds),
          video && video.width ? `${video.width}×${video.height}` : null,
          (s.viewers || 0) + (s.viewers === 1 ? ' viewer' : ' viewers'),
        ].filter(Boolean).join(' · ');
        return el('div', { className: 'card' },
          el('div', null, el('span', { className: 'badge live' }, 'live')),
          el('a', { className: 'name', href: watchURL(s.name, 'hls') }, s.name),
          el('div', { className: 'meta' }, meta),
          el('div', { className: 'links' },
            el('a', { href: watchURL(s.name, 'hls') }, 'HLS'),
            el('a', { href: watchURL(s.name, 'dash') }, 'DASH')));
      }));
    }

    refresh();
  }

  // ------------------------------------------------------------- watch view

  function watch(name, format, lowLatency) {
    $('watch-view').hidden = false;
    document.title = name + ' · live';
    $('title').textContent = name;
    $('back').href = location.pathname; // the same page without a query: the list
    $('fmt-hls').href = watchURL(name, 'hls', lowLatency);
    $('fmt-dash').href = watchURL(name, 'dash', lowLatency);
    $('fmt-' + format).className = 'on';
    const llBox = $('ll');
    llBox.checked = lowLatency;
    llBox.addEventListener('change', () => { location.search = watchURL(name, format, llBox.checked); });

    const video = $('video');
    const overlay = $('overlay');
    const base = (token ? '/t/' + encodeURIComponent(token) : '') + '/live/' + encodeURIComponent(name);

    // State for automated browser tests; always the same object, updated in place.
    const state = window.__live = {
      format: format,
      lowLatency: lowLatency,
      error: null,
      playing: false,
      firstFrameMs: null,
      stalls: 0,
      bitrate: 0,
      switches: 0,
      ended: false, // played to the end; the page reloads when the stream is back
      latency: null, // glass to player, seconds, as the overlay shows it (latency())
      clockOffsetMs: null, // the server's clock minus ours (serverNow())
    };

    // What the overlay and beacons need from whichever player is in use.
    // rendition() → {width, height, bitrate} | null; frameTime() → the
    // wall-clock time, in ms on the server's clock, of the frame on screen
    // | null; target() → the latency the player aims at, seconds | null.
    let probe = { rendition: () => null, frameTime: () => null, target: () => null };

    // ---- latency

    // The server's clock, for the latency: our clock plus an offset taken
    // from the origin's /time (the clock the MPD's UTCTiming names, and the
    // one that dates EXT-X-PROGRAM-DATE-TIME), as the middle of the
    // quickest of three round trips; again every minute, a clock may drift.
    let clockOffset = null;
    async function syncClock() {
      let best = null;
      for (let i = 0; i < 3; i++) {
        try {
          const t0 = Date.now();
          const res = await fetch('/time', { cache: 'no-store' });
          const server = Date.parse(await res.text());
          const t1 = Date.now();
          if (res.ok && isFinite(server) && (!best || t1 - t0 < best.rtt)) {
            best = { rtt: t1 - t0, offset: server - (t0 + t1) / 2 };
          }
        } catch (e) { /* unreachable: keep the last offset */ }
      }
      if (best) clockOffset = state.clockOffsetMs = Math.round(best.offset);
      setTimeout(syncClock, 60000);
    }
    syncClock();

    function serverNow() { return clockOffset == null ? null : Date.now() + clockOffset; }

    // latency returns the glass-to-player latency in seconds: the server's
    // clock now less the wall-clock time the frame on screen reached
    // ingest, which both manifests give (PROGRAM-DATE-TIME, the MPD's
    // availabilityStartTime); null while either is unknown.
    function latency() {
      const now = serverNow(), frame = safe(probe.frameTime);
      const lat = now != null && frame != null && isFinite(frame) && frame > 0 ? (now - frame) / 1000 : null;
      state.latency = lat == null ? null : round2(lat);
      return lat;
    }

    // ---- QoE beacons

    // The server counts a viewer once per session it started: the page asks
    // POST /api/qoe/session for one as it loads, sends the token with every
    // beacon, and renews it at half its lifetime (the same session, a fresh
    // token). Without one (the stream not live yet, too many new sessions
    // from this address, the server unreachable) the page plays on, sends
    // no beacons, and asks again in about 30 s.
    let session = null; // the token
    const sessionReady = refreshSession(); // settles after the first answer

    // One request, then the next one scheduled: a chain, never two at once.
    async function refreshSession() {
      let next = 30000 * (0.75 + Math.random() / 2);
      try {
        const body = session ? { stream: name, session: session } : { stream: name };
        const res = await fetch('/api/qoe/session', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
          cache: 'no-store',
        });
        if (res.ok) {
          const s = await res.json();
          session = s.session;
          next = Math.max(30, s.expires_in / 2) * 1000;
        } else if (res.status === 403) {
          // Expired: the page slept through its renewals. A new session.
          session = null;
          next = 1000;
        }
      } catch (e) { /* unreachable: try again later */ }
      setTimeout(refreshSession, next);
    }

    // Fire and forget: a failed or rejected beacon is never retried. Sent
    // once the page has its session; dropped if it has none.
    function beacon(event, fields) {
      const body = Object.assign({ stream: name, event: event, format: format }, fields);
      const send = () => {
        if (!session) return;
        body.session = session;
        try {
          fetch('/api/qoe', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify(body),
            keepalive: true,
          }).catch(() => {});
        } catch (e) { /* ignore */ }
      };
      if (session) send(); else sessionReady.then(send);
    }

    // The current rendition from the player; also keeps state.bitrate fresh.
    function rendition() {
      const r = safe(probe.rendition);
      if (r && r.bitrate > 0) state.bitrate = r.bitrate;
      return r;
    }

    // bitrate, buffer_s and latency_s, leaving out what is unknown.
    function metrics() {
      rendition();
      const m = {};
      if (state.bitrate > 0) m.bitrate = Math.round(state.bitrate);
      m.buffer_s = round2(bufferAhead());
      const lat = latency();
      if (lat != null) m.latency_s = round2(lat);
      return m;
    }

    function round2(x) { return Math.round(x * 100) / 100; }

    // Player getters may throw before the stream is initialised.
    function safe(fn) {
      try { return fn(); } catch (e) { return null; }
    }

    // ---- errors

    function fail(msg) {
      msg = String(msg).slice(0, 200);
      console.error('player error:', msg);
      if (state.error) return; // keep the first one; beacon once
      state.error = msg;
      beacon('error', { error: msg });
      updateOverlay();
      awaitComeBack();
    }

    video.addEventListener('error', () => {
      const e = video.error;
      fail('video element: ' + (e ? `code ${e.code}${e.message ? ' ' + e.message : ''}` : 'unknown error'));
    });

    // ---- buffer, first frame, stalls

    // Seconds of media buffered ahead of the playhead (0 when outside any range).
    function bufferAhead() {
      const t = video.currentTime, b = video.buffered;
      for (let i = 0; i < b.length; i++) {
        if (b.start(i) <= t + 0.05 && t < b.end(i)) return b.end(i) - t;
      }
      return 0;
    }

    // First frame: the time (since navigation start) of the first 'playing'
    // event after which currentTime actually moves. A 'playing' that is
    // followed by no progress (e.g. an immediate stall) is replaced by the next.
    let playingAt = null; // {t, ct}
    video.addEventListener('playing', () => {
      if (state.firstFrameMs === null) playingAt = { t: performance.now(), ct: video.currentTime };
    });
    function checkFirstFrame() {
      if (state.firstFrameMs !== null || !playingAt || video.currentTime === playingAt.ct) return;
      state.firstFrameMs = Math.round(playingAt.t);
      beacon('start', Object.assign({ first_frame_ms: state.firstFrameMs }, metrics()));
    }
    video.addEventListener('timeupdate', checkFirstFrame);

    // A stall: after the first frame, not paused, and < 0.1 s buffered ahead.
    // One 'stall' beacon per episode, when the episode reaches 2 s.
    let stallSince = null, stallCounted = false;
    setInterval(() => {
      checkFirstFrame();
      const started = state.firstFrameMs !== null;
      const starving = started && !video.paused && !video.ended && bufferAhead() < 0.1;
      const now = performance.now();
      if (starving) {
        if (stallSince === null) stallSince = now;
        if (!stallCounted && now - stallSince >= 2000) {
          stallCounted = true;
          state.stalls++;
          beacon('stall', Object.assign(metrics(), { stall_ms: 2000 }));
          awaitComeBack();
        }
      } else {
        stallSince = null;
        stallCounted = false;
      }
      state.playing = playingNow();
    }, 250);

    // Whether the video plays at this moment: after its first frame, not
    // paused or ended, with media ahead of the playhead.
    function playingNow() {
      return state.firstFrameMs !== null && !video.paused && !video.ended && bufferAhead() >= 0.1;
    }

    function onSwitch(bitrate) {
      state.switches++;
      if (bitrate > 0) state.bitrate = bitrate;
      beacon('switch', { bitrate: Math.round(bitrate) || undefined });
    }

    // ---- overlay

    function updateOverlay() {
      const r = rendition();
      const lat = latency(), target = safe(probe.target);
      let rend = '–';
      if (r && r.width) rend = `${r.width}x${r.height}`;
      else if (video.videoWidth) rend = `${video.videoWidth}x${video.videoHeight}`;
      const lines = [
        'format    ' + format.toUpperCase(),
        'rendition ' + rend + (state.bitrate ? ` @ ${Math.round(state.bitrate / 1000)} kbps` : ''),
        'buffer    ' + bufferAhead().toFixed(1) + ' s',
        'latency   ' + (lat != null ? lat.toFixed(1) + ' s' : '–') +
          (target > 0 ? ` (target ${target.toFixed(1)} s${lowLatency ? ', low latency' : ''})` : ''),
        'stalls    ' + state.stalls,
        'first     ' + (state.firstFrameMs != null ? state.firstFrameMs + ' ms' : '–'),
      ];
      if (state.ended) lines.push('ended     waiting for the stream to come back');
      overlay.textContent = lines.join('\n');
      if (state.error) overlay.append('\n', el('span', { className: 'error' }, 'error     ' + state.error));
    }
    setInterval(updateOverlay, 500);
    updateOverlay();

    setInterval(() => beacon('heartbeat', metrics()), 10000);

    // ---- the stream coming back

    // A stream ends for players when its publisher stops (or is gone for
    // longer than the server's reconnect window). A publisher back in time
    // with other settings, or changing its setup mid-stream, needs nothing
    // here: dash.js plays on into the MPD's next Period, hls.js on through
    // the discontinuity its media playlists go on with. So when the video
    // ends, stalls or fails, the page waits for a publisher session other
    // than the one live when it loaded (its start time differs) and starts
    // over with it; it stops waiting if the player recovers by itself.
    async function liveSince() {
      try {
        const res = await fetch('/api/streams/' + encodeURIComponent(name), { cache: 'no-store' });
        if (!res.ok) return null;
        const s = await res.json();
        return s.live ? s.started : null;
      } catch (e) { return null; }
    }
    const loadedSince = liveSince(); // asked before the player loads anything
    // The wait backs off from 2 s to 30 s, with jitter: the viewers of a
    // stream that ended do not all ask the server every 2 s for good.
    let awaiting = false;
    function awaitComeBack() {
      if (awaiting) return;
      awaiting = true;
      let delay = 2000;
      const poll = async () => {
        const since = await liveSince();
        if (since && since !== await loadedSince) {
          location.reload();
          return;
        }
        // Asked of the video now: state.playing may be a moment old, from
        // before the 'ended' that started this wait.
        if (playingNow() && !state.error) {
          awaiting = false; // recovered
          return;
        }
        setTimeout(poll, delay * (0.75 + Math.random() / 2));
        delay = Math.min(delay * 1.5, 30000);
      };
      poll();
    }
    video.addEventListener('ended', () => {
      state.ended = true;
      updateOverlay();
      awaitComeBack();
    });

    // ---- players

    // An encrypted stream (issue #25) plays with EME ClearKey, its keys
    // from the license URL beside its manifests, which answers only the
    // viewers who may watch it. Null for a clear stream.
    let licenseURL = null;
    const encrypted = fetch('/api/streams/' + encodeURIComponent(name), { cache: 'no-store' })
      .then((res) => (res.ok ? res.json() : {}), () => ({}))
      .then((s) => { if (s.encrypted) licenseURL = base + '/license'; });

    if (format === 'dash') {
      // dash.js's EME module is a script of its own, loaded first: the
      // player's script sets the dashjs global anew, and looks for it as
      // dashjs.Protection.
      let protection = null;
      encrypted
        .then(() => licenseURL && loadScript('/static/vendor/dash.protection.min.js').then(() => { protection = window.dashjs; }))
        .then(() => loadScript('/static/vendor/dash.mediaplayer.min.js'))
        .then(() => { if (protection) window.dashjs.Protection = protection; startDash(); }, fail);
    } else {
      Promise.all([encrypted, loadScript('/static/vendor/hls.min.js')]).then(startHls, fail);
    }

    function loadScript(src) {
      return new Promise((resolve, reject) => {
        const s = el('script', { src: src });
        s.onload = () => resolve();
        s.onerror = () => reject(new Error('cannot load ' + src));
        document.head.append(s);
      });
    }

    function startHls() {
      const url = base + '/index.m3u8';
      const Hls = window.Hls;
      if (!Hls || !Hls.isSupported()) {
        // Safari (iOS in particular) plays HLS natively.
        if (video.canPlayType('application/vnd.apple.mpegurl')) {
          video.src = url;
          probe = {
            rendition: () => null, // the overlay falls back to videoWidth x videoHeight
            // Safari: the PROGRAM-DATE-TIME of currentTime 0 (NaN until known).
            frameTime: () => video.getStartDate().getTime() + video.currentTime * 1000,
            target: () => null,
          };
        } else {
          fail('HLS is not supported by this browser');
        }
        return;
      }

      // Low latency: hls.js holds itself PART-HOLD-BACK behind the live
      // edge of the playlists' parts (LL-HLS), the page catching up
      // (catchUpHls); else three segments behind.
      const hls = new Hls(Object.assign(lowLatency
        ? { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1 }
        : { lowLatencyMode: false, liveSyncDurationCount: 3 },
      licenseURL ? { emeEnabled: true, drmSystems: { 'org.w3.clearkey': { licenseUrl: licenseURL } } } : {}));
      window.__hls = hls; // handy in the console
      let triedRecovery = false;
      let level = -1; // last switched-to level; -1 until the initial choice

      hls.on(Hls.Events.MANIFEST_PARSED, () => {
        const p = video.play();
        if (p) p.catch(() => {}); // autoplay refusal is not an error (the video is muted anyway)
      });
      hls.on(Hls.Events.LEVEL_SWITCHED, (ev, data) => {
        // The first LEVEL_SWITCHED is the initial choice, not a switch.
        if (level !== -1 && data.level !== level) {
          const l = hls.levels[data.level];
          onSwitch(l ? l.bitrate : 0);
        }
        level = data.level;
      });
      hls.on(Hls.Events.ERROR, (ev, data) => {
        if (!data.fatal) return; // hls.js handles (retries) these itself
        if (data.type === Hls.ErrorTypes.MEDIA_ERROR && !triedRecovery) {
          triedRecovery = true;
          console.warn('hls media error, trying recoverMediaError():', data.details);
          hls.recoverMediaError();
          return;
        }
        fail(`hls ${data.type}: ${data.details}${data.error && data.error.message ? ' (' + data.error.message + ')' : ''}`);
      });

      probe = {
        rendition: () => {
          const l = hls.levels && hls.levels[hls.currentLevel];
          return l ? { width: l.width, height: l.height, bitrate: l.bitrate } : null;
        },
        // EXT-X-PROGRAM-DATE-TIME of the fragment playing, plus how far
        // into it the playhead is. (hls.latency is something else: how far
        // behind its estimate of the playlist's live edge hls.js plays.)
        frameTime: () => { const d = hls.playingDate; return d ? d.getTime() : null; },
        target: () => hls.targetLatency,
      };

      if (lowLatency) catchUpHls(hls);
      hls.loadSource(url);
      hls.attachMedia(video);
    }

    // catchUpHls plays faster, by up to 10%, while hls.js plays more
    // than 0.05 s behind its target (PART-HOLD-BACK behind its estimate
    // of the live edge) with 0.3 s or more buffered ahead. hls.js starts
    // behind it: it takes its start position when it reads the playlist
    // and plays once the parts up to it have arrived, the live edge
    // having moved on meanwhile (0.4 s on this machine, bench/latency);
    // a stall puts it further behind. Its own catch-up
    // (maxLiveSyncPlaybackRate, off here so that the two do not fight)
    // needs more than a second buffered ahead, which a player
    // PART-HOLD-BACK (0.84 s) behind the edge never has. Half a second
    // behind takes about 5 s to make up; Chromium keeps the pitch.
    function catchUpHls(hls) {
      setInterval(() => {
        if (state.firstFrameMs === null || video.paused || video.seeking) return;
        const behind = hls.latency - hls.targetLatency;
        const rate = behind > 0.05 && bufferAhead() >= 0.3 ? 1 + Math.min(0.1, behind / 2) : 1;
        if (Math.abs(video.playbackRate - rate) > 0.001) video.playbackRate = rate;
      }, 250);
    }

    function startDash() {
      const dashjs = window.dashjs;
      if (!dashjs) return fail('dash.js did not load');
      const player = dashjs.MediaPlayer().create();
      window.__dash = player; // handy in the console
      const E = dashjs.MediaPlayer.events;

      player.on(E.QUALITY_CHANGE_RENDERED, (e) => {
        // The initial choice arrives with oldRepresentation null.
        if (e.mediaType !== 'video' || !e.oldRepresentation || !e.newRepresentation) return;
        if (e.oldRepresentation.id !== e.newRepresentation.id) onSwitch(e.newRepresentation.bandwidth);
      });
      player.on(E.ERROR, (e) => {
        const err = e && e.error;
        const text = err && typeof err === 'object'
          ? `${err.code != null ? err.code + ' ' : ''}${err.message || ''}`
          : String(err);
        fail('dash: ' + text);
      });

      probe = {
        rendition: () => {
          // dash.js 5 API; throws before streaming is initialised (caught by safe()).
          const r = player.getCurrentRepresentationForType('video') ||
                    player.getCurrentRepresentationForType('audio');
          return r ? { width: r.width, height: r.height, bitrate: r.bandwidth } : null;
        },
        // availabilityStartTime plus currentTime, on the MPD timeline: the
        // wall-clock time of the frame (the ProducerReferenceTime's, in a
        // Period that begins where its instance's timeline does). What
        // getCurrentLiveLatency() measures, on dash.js's own UTCTiming
        // sync with the same /time.
        frameTime: () => player.timeAsUTC() * 1000,
        target: () => player.getTargetLiveDelay(),
      };

      if (!lowLatency) {
        // The MPD's ServiceDescription asks for low latency; without it,
        // dash.js plays suggestedPresentationDelay (three segments) behind
        // the live edge, without catching up.
        player.updateSettings({ streaming: {
          applyServiceDescription: false,
          applyProducerReferenceTime: false,
          liveCatchup: { enabled: false },
        } });
      }

      // autoplay=true: dash.js starts playback itself once it has attached.
      // Never call video.play() before that: it silently stalls live MPD refresh.
      if (licenseURL) player.setProtectionData({ 'org.w3.clearkey': { serverURL: licenseURL } });
      player.initialize(video, base + '/manifest.mpd', true);
      // Without a <UTCTiming> in the MPD, dash.js would sync its clock against
      // https://time.akamai.com. Drop that default (initialize() installs it, so
      // this must come after; the MPD is fetched asynchronously, later): dash.js
      // then uses the Date header of our own MPD response.
      player.clearDefaultUTCTimingSources();
    }
  }
})();
