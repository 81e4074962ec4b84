module github.com/pipecore/pipecore/e2e

go 1.26.8
