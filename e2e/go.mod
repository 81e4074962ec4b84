module github.com/pipecore/pipecore/e2e

go 1.26.8

require (
	github.com/valyala/fasthttp v1.78.0
	go.etcd.io/bbolt v1.5.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
