module github.com/pipecore/pipecore/core

go 1.26.8
