module github.com/golivestream/live

go 1.26.8

require (
	github.com/Eyevinn/dash-mpd v0.17.0 // indirect
	github.com/Eyevinn/mp4ff v0.56.0 // indirect
	github.com/abema/go-mp4 v1.6.0 // indirect
	github.com/asticode/go-astikit v0.30.0 // indirect
	github.com/asticode/go-astits v1.15.0 // indirect
	github.com/bluenviron/gohlslib/v2 v2.3.0 // indirect
	github.com/bluenviron/gortmplib v0.3.0 // indirect
	github.com/bluenviron/mediacommon/v2 v2.9.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/golang-lru/v2 v2.0.7 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
)
