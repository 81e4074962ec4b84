package pluginhost

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ErrChecksumMismatch is returned by Register when the file's SHA-256 is
// not the one the operator gave.
var ErrChecksumMismatch = errors.New("pluginhost: checksum mismatch")

// ErrInvalid is wrapped by Register's refusals of a malformed request.
var ErrInvalid = errors.New("pluginhost: invalid registration")

// pinsFile is the JSON document of the binaries operators registered.
type pinsFile struct {
	Plugins []pinJSON `json:"plugins"`
}

type pinJSON struct {
	Name         string    `json:"name"`
	Path         string    `json:"path"`
	SHA256       string    `json:"sha256"`
	RegisteredAt time.Time `json:"registered_at"`
}

// loadPins reads the registered binaries; a missing file holds none.
func loadPins(path string) ([]Binary, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pluginhost: %w", err)
	}
	var doc pinsFile
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("pluginhost: %s: %w", path, err)
	}
	out := make([]Binary, 0, len(doc.Plugins))
	for i, p := range doc.Plugins {
		sum, err := hex.DecodeString(p.SHA256)
		if err != nil || len(sum) != sha256.Size || !namePattern.MatchString(p.Name) || !filepath.IsAbs(p.Path) {
			return nil, fmt.Errorf("pluginhost: %s: plugins[%d] is malformed", path, i)
		}
		_, version, _ := ParseFileName(filepath.Base(p.Path))
		out = append(out, Binary{Name: p.Name, Version: version, Path: p.Path, Checksum: sum, Registered: true})
	}
	return out, nil
}

// savePins writes the registered binaries atomically (0600).
func savePins(path string, bins []Binary, now time.Time, prev []pinJSON) error {
	if path == "" {
		return nil
	}
	when := map[string]time.Time{}
	for _, p := range prev {
		when[p.SHA256] = p.RegisteredAt
	}
	doc := pinsFile{Plugins: []pinJSON{}}
	for _, b := range bins {
		sum := hex.EncodeToString(b.Checksum)
		at, ok := when[sum]
		if !ok {
			at = now.UTC()
		}
		doc.Plugins = append(doc.Plugins, pinJSON{Name: b.Name, Path: b.Path, SHA256: sum, RegisteredAt: at})
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pluginhost: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("pluginhost: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pluginhost: %w", err)
	}
	return nil
}

func readPinsJSON(path string) []pinJSON {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var doc pinsFile
	if json.Unmarshal(bytes.TrimSpace(data), &doc) != nil {
		return nil
	}
	return doc.Plugins
}

// checkRegistration validates one registration and returns the Binary it
// pins. The file must exist, be an executable regular file whose SHA-256
// is sum, and its name, when it is a plugin file name, must agree with name.
func checkRegistration(name, path string, sum []byte) (Binary, error) {
	if !namePattern.MatchString(name) {
		return Binary{}, fmt.Errorf("%w: plugin name %q must be lowercase letters, digits, _ or -", ErrInvalid, name)
	}
	if len(sum) != sha256.Size {
		return Binary{}, fmt.Errorf("%w: give the binary's SHA-256 as 64 hex digits", ErrInvalid)
	}
	if !filepath.IsAbs(path) {
		return Binary{}, fmt.Errorf("%w: path %q must be absolute (it is a path on the gateway's host)", ErrInvalid, path)
	}
	path = filepath.Clean(path)
	info, err := os.Stat(path)
	if err != nil {
		return Binary{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return Binary{}, fmt.Errorf("%w: %s is not an executable file", ErrInvalid, path)
	}
	var version string
	if fileName, v, ok := ParseFileName(filepath.Base(path)); ok {
		if fileName != name {
			return Binary{}, fmt.Errorf("%w: %s is a binary of plugin %q, not %q", ErrInvalid, path, fileName, name)
		}
		version = v
	}
	got, err := fileSHA256(path)
	if err != nil {
		return Binary{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !bytes.Equal(got, sum) {
		return Binary{}, fmt.Errorf("%w: the SHA-256 of %s is %x, not the %x given; refusing to pin it", ErrChecksumMismatch, path, got, sum)
	}
	return Binary{Name: name, Version: version, Path: path, Checksum: sum, Registered: true}, nil
}
