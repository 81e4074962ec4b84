module github.com/pipecore/pipecore/plugins/stripe

go 1.26.8
