package app

import (
	"net"
	"strconv"
)

// RTMPAddr returns the address publishers connect to.
func (a *App) RTMPAddr() net.Addr { return a.ingest.Addr() }

// RTMPSAddr returns the address publishers connect to with RTMPS, or nil.
func (a *App) RTMPSAddr() net.Addr { return a.ingest.TLSAddr() }

// HTTPAddr returns the address players connect to with plain HTTP.
func (a *App) HTTPAddr() net.Addr { return a.players.Addr() }

// HTTPSAddr returns the address players connect to with HTTPS, or nil.
func (a *App) HTTPSAddr() net.Addr {
	if a.playersTLS == nil {
		return nil
	}
	return a.playersTLS.Addr()
}

// OriginAddr returns the origin's HTTP address: HTTPAddr without a PoP.
func (a *App) OriginAddr() net.Addr {
	if a.originHTTP == nil {
		return a.HTTPAddr()
	}
	return a.originHTTP.Addr()
}

// loopbackAddr turns a listening address into one we can dial: an
// unspecified IP becomes 127.0.0.1.
func loopbackAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return addr.String()
	}
	host := "127.0.0.1"
	if !tcp.IP.IsUnspecified() && tcp.IP != nil {
		host = tcp.IP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// URLs returns where to publish and where to play, for humans.
func (a *App) URLs() (publish, play string) {
	var query string
	switch {
	case a.cfg.PublishKey != "":
		query = "?key={key}"
	case a.cfg.PublishAuthURL != "":
		query = "?key=... (as " + a.cfg.PublishAuthURL + " agrees)"
	}
	publish = "rtmp://" + loopbackAddr(a.RTMPAddr()) + "/live/{stream}" + query
	if addr := a.ingest.TLSAddr(); addr != nil {
		publish += ", rtmps://" + loopbackAddr(addr) + "/live/{stream}" + query
	}
	play = a.PlayBase() + "/live/{stream}/index.m3u8 (HLS), /live/{stream}/manifest.mpd (DASH)"
	if addr := a.HTTPSAddr(); addr != nil {
		play += ", also at https://" + loopbackAddr(addr)
	}
	return publish, play
}

// PlayBase returns the base URL players use on this machine:
// http://127.0.0.1:PORT.
func (a *App) PlayBase() string { return "http://" + loopbackAddr(a.HTTPAddr()) }
