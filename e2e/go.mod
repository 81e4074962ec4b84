module github.com/pipecore/pipecore/e2e

go 1.26.8

require (
	github.com/valyala/fasthttp v1.78.0
	go.etcd.io/bbolt v1.5.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/pipecore/pipecore/plugins/email v0.0.0-00010101000000-000000000000
	github.com/pipecore/pipecore/plugins/pedidosya v0.0.0-00010101000000-000000000000
	github.com/pipecore/pipecore/plugins/rappi v0.0.0-00010101000000-000000000000
	github.com/pipecore/pipecore/plugins/uberdirect v0.0.0-00010101000000-000000000000
	github.com/pipecore/pipecore/plugins/whatsapp v0.0.0-00010101000000-000000000000
	github.com/pipecore/pipecore/sdk v0.0.0-00010101000000-000000000000 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/pipecore/pipecore/plugins/uberdirect => ../plugins/uberdirect

replace github.com/pipecore/pipecore/plugins/rappi => ../plugins/rappi

replace github.com/pipecore/pipecore/plugins/pedidosya => ../plugins/pedidosya

replace github.com/pipecore/pipecore/plugins/whatsapp => ../plugins/whatsapp

replace github.com/pipecore/pipecore/plugins/email => ../plugins/email

replace github.com/pipecore/pipecore/sdk => ../sdk
