package origin

import "sort"

// The registry: the streams of a Server by name, the replaced instances
// and the remains of dropped ones, all guarded by Server.mu.

// replacedKey is the key of instance epoch of the stream name in
// Server.replaced.
func replacedKey(name, epoch string) string { return name + "/" + epoch }

// instance returns the instance epoch of the stream called name: the
// current one or one replaced and lingering; nil for none.
func (s *Server) instance(name, epoch string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[name]; st != nil && st.epoch == epoch {
		return st
	}
	return s.replaced[replacedKey(name, epoch)]
}

// stream returns the stream called name, or nil. Names only index a map:
// nothing a client sends reaches the filesystem.
func (s *Server) stream(name string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[name]
}

// list returns the streams sorted by name.
func (s *Server) list() []*stream {
	s.mu.Lock()
	out := make([]*stream, 0, len(s.streams))
	for _, st := range s.streams {
		out = append(out, st)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// forget drops st, whose linger is over, if it is still the stream
// registered under its name, or a replaced instance: the streams' way
// back into the registry (streamEnv.forget). An instance that a later one
// continues keeps its media playlists, without its segments, while the
// chain goes on: its HLS players are still on them (playlist_bridge.go).
// The chain's remains go with its last instance.
func (s *Server) forget(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.gone.Store(true)
	if st.succ.Load() != nil && !newestOf(st).gone.Load() {
		st.strip()
		trimRemains(s.replaced, st.name)
		return
	}
	delete(s.replaced, replacedKey(st.name, st.epoch))
	for key, p := range s.replaced {
		if p.name == st.name && p.gone.Load() && newestOf(p).gone.Load() {
			delete(s.replaced, key)
		}
	}
	if s.streams[st.name] == st {
		delete(s.streams, st.name)
		s.log.Info("stream dropped", "stream", st.name)
		if s.cfg.Directory != nil {
			s.cfg.Directory.Serving(st.name, "", 0)
		}
	}
}

// maxRemains bounds the dropped instances of one name kept for their
// playlists: a publisher changing its setup again and again does not
// grow the origin. Players on an older one get 404.
const maxRemains = 16

// trimRemains drops from replaced, a registry's map of replaced instances
// (whose lock its caller holds), the oldest dropped instances of name
// beyond maxRemains.
func trimRemains(replaced map[string]*stream, name string) {
	for {
		var oldest *stream
		n := 0
		for _, p := range replaced {
			if p.name == name && p.gone.Load() {
				n++
				if oldest == nil || p.epochMillis < oldest.epochMillis {
					oldest = p
				}
			}
		}
		if n <= maxRemains {
			return
		}
		delete(replaced, replacedKey(oldest.name, oldest.epoch))
	}
}
