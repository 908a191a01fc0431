package ingest

import (
	"errors"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
)

// errUnpublished ends a publisher's read loop when it says it stops
// publishing: its stream ends at once, where a connection that breaks
// leaves the stream waiting for the publisher to come back
// (Session.Drop).
var errUnpublished = errors.New("publisher unpublished")

// unpublishConn passes a publisher's messages on to the gortmplib Reader,
// which drops commands, and turns the commands that end publishing into
// errUnpublished: FCUnpublish and deleteStream (ffmpeg, OBS and most
// encoders send both when they stop), closeStream.
type unpublishConn struct {
	gortmplib.Conn
}

func (c unpublishConn) Read() (message.Message, error) {
	msg, err := c.Conn.Read()
	if cmd, ok := msg.(*message.CommandAMF0); ok && err == nil {
		switch cmd.Name {
		case "FCUnpublish", "deleteStream", "closeStream":
			return nil, errUnpublished
		}
	}
	return msg, err
}
