package pluginhost

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// BinaryPrefix starts the file name of every plugin binary; the rest of
// the name is the plugin's name: pipecore-plugin-stripe serves "stripe".
const BinaryPrefix = "pipecore-plugin-"

// SumsFile lists the SHA-256 of every plugin binary in sha256sum's format.
const SumsFile = "SHA256SUMS"

// Binary is a plugin executable found in the plugins directory.
type Binary struct {
	Name     string // e.g. "stripe"
	Path     string
	Checksum []byte // pinned SHA-256 from SHA256SUMS; nil when not listed
}

// Discover lists the plugin binaries in dir with their pinned checksums.
// A binary missing from SHA256SUMS is returned with a nil Checksum: the
// host refuses to launch it. A missing SHA256SUMS is an error.
func Discover(dir string) ([]Binary, error) {
	sums, err := readSums(filepath.Join(dir, SumsFile))
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: read plugins dir: %w", err)
	}
	var out []Binary
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
		if !ok || name == "" || e.IsDir() || strings.ContainsAny(name, ".@ ") {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		out = append(out, Binary{Name: name, Path: filepath.Join(dir, e.Name()), Checksum: sums[e.Name()]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readSums(path string) (map[string][]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pluginhost: %s is missing: every plugin binary must be pinned by its SHA-256 (run make build, or sha256sum pipecore-plugin-* > %s)", path, SumsFile)
	}
	if err != nil {
		return nil, fmt.Errorf("pluginhost: %w", err)
	}
	sums := make(map[string][]byte)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		hexSum, file, ok := strings.Cut(line, " ")
		file = strings.TrimPrefix(strings.TrimSpace(file), "*") // sha256sum's binary-mode marker
		sum, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(sum) != 32 || file == "" {
			return nil, fmt.Errorf("pluginhost: %s:%d: want \"<sha256 hex>  <file>\"", path, n)
		}
		sums[filepath.Base(file)] = sum
	}
	return sums, sc.Err()
}
