package pluginhost

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// BinaryPrefix starts the file name of every plugin binary; the rest of
// the name is the plugin's name, optionally followed by "@" and the
// plugin's version: pipecore-plugin-stripe serves "stripe" in whatever
// version it reports, pipecore-plugin-stripe@1.4.0 serves "stripe" 1.4.0
// (the plugin must report that version, or it is refused).
const BinaryPrefix = "pipecore-plugin-"

// SumsFile lists the SHA-256 of every plugin binary in sha256sum's format.
const SumsFile = "SHA256SUMS"

// namePattern is a plugin name as it appears in a binary's file name.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Binary is a plugin executable: found in the plugins directory or
// registered by an operator.
type Binary struct {
	Name string // e.g. "stripe"
	// Version is the version the file name promises ("1.4.0" for
	// pipecore-plugin-stripe@1.4.0); empty when the name has none, and the
	// version is then learned from the plugin's Info at its first launch.
	Version  string
	Path     string
	Checksum []byte // pinned SHA-256; nil when not pinned (never launched)
	// Registered is true for a binary pinned through Host.Register rather
	// than listed in SHA256SUMS.
	Registered bool
}

// id identifies a binary by its pinned content: two paths to the same
// bytes are one binary.
func (b Binary) id() string {
	if b.Checksum == nil {
		return "unpinned:" + b.Path
	}
	return hex.EncodeToString(b.Checksum)
}

// ParseFileName splits a plugin binary's file name into the plugin's name
// and the version it promises ("" when none). ok is false for a file that
// is not a plugin binary, or whose version suffix is not semantic.
func ParseFileName(file string) (name, version string, ok bool) {
	rest, ok := strings.CutPrefix(file, BinaryPrefix)
	if !ok {
		return "", "", false
	}
	name, version, versioned := strings.Cut(rest, "@")
	if !namePattern.MatchString(name) {
		return "", "", false
	}
	if versioned {
		if _, err := ParseVersion(version); err != nil || strings.HasPrefix(version, "v") {
			return "", "", false
		}
	}
	return name, version, true
}

// Discover lists the plugin binaries in dir with their pinned checksums,
// sorted by name, then path. A binary missing from SHA256SUMS is returned
// with a nil Checksum: the host refuses to launch it. A missing SHA256SUMS
// is an error. Files named like plugins but with a malformed version
// suffix are skipped.
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
		name, version, ok := ParseFileName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			continue
		}
		out = append(out, Binary{Name: name, Version: version, Path: filepath.Join(dir, e.Name()), Checksum: sums[e.Name()]})
	}
	sortBinaries(out)
	return out, nil
}

func sortBinaries(bins []Binary) {
	sort.SliceStable(bins, func(i, j int) bool {
		if bins[i].Name != bins[j].Name {
			return bins[i].Name < bins[j].Name
		}
		return bins[i].Path < bins[j].Path
	})
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
		if !ok || err != nil || len(sum) != sha256.Size || file == "" {
			return nil, fmt.Errorf("pluginhost: %s:%d: want \"<sha256 hex>  <file>\"", path, n)
		}
		sums[filepath.Base(file)] = sum
	}
	return sums, sc.Err()
}

// fileSHA256 hashes the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
