package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeFile writes data to a new file in a temporary directory with mode.
func writeFile(tb testing.TB, data string, mode os.FileMode) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		tb.Fatal(err)
	}
	return path
}

func b64Key(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, kekSize))
}

func TestNewKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	l, err := NewKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	if l.ID() != LocalID {
		t.Errorf("ID = %q", l.ID())
	}
	if _, err := NewKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("NewKeyFile over an existing file = %v, want fs.ErrExist", err)
	}
	back, err := LoadLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.keys[1], l.keys[1]) || back.current != 1 || isZero(back.keys[1]) {
		t.Error("LoadLocal does not read back the key NewKeyFile wrote")
	}
	other, err := NewKeyFile(filepath.Join(t.TempDir(), "keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.keys[1], l.keys[1]) {
		t.Error("two new key files hold the same key")
	}
	if _, err := NewKeyFile(filepath.Join(t.TempDir(), "missing", "keys.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("NewKeyFile in a missing directory = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadLocalPermissions(t *testing.T) {
	valid := `{"versions":{"1":"` + b64Key(1) + `"},"current":1}`
	cases := map[string]struct {
		mode os.FileMode
		want error // nil: loads
	}{
		"0600": {0o600, nil},
		"0400": {0o400, nil},
		"0700": {0o700, nil},
		"0640": {0o640, ErrKeyFilePerm},
		"0644": {0o644, ErrKeyFilePerm},
		"0604": {0o604, ErrKeyFilePerm},
		"0620": {0o620, ErrKeyFilePerm},
		"0602": {0o602, ErrKeyFilePerm},
		"0610": {0o610, ErrKeyFilePerm},
		"0666": {0o666, ErrKeyFilePerm},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadLocal(writeFile(t, valid, c.mode))
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("LoadLocal = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("symlink to 0600", func(t *testing.T) {
		target := writeFile(t, valid, 0o600)
		link := filepath.Join(t.TempDir(), "link.json")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLocal(link); err != nil {
			t.Errorf("LoadLocal through a symlink: %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "keys.json")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLocal(dir); !errors.Is(err, ErrKeyFilePerm) {
			t.Errorf("LoadLocal of a directory = %v, want ErrKeyFilePerm", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadLocal(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadLocal of a missing file = %v, want fs.ErrNotExist", err)
		}
	})
}

func TestLoadLocalInvalid(t *testing.T) {
	// secretKey is a valid key that appears in every file below; no error
	// may quote it.
	secretKey := b64Key(0x42)
	cases := map[string]string{
		"empty file":          ``,
		"not json":            `versions: ` + secretKey,
		"json of a string":    `"` + secretKey + `"`,
		"no versions":         `{"current":1}`,
		"current missing":     `{"versions":{"1":"` + secretKey + `"},"current":2}`,
		"current zero":        `{"versions":{"1":"` + secretKey + `"}}`,
		"short key":           `{"versions":{"1":"` + secretKey[:24] + `"},"current":1}`,
		"long key":            `{"versions":{"1":"` + b64Key(1) + b64Key(2) + `"},"current":1}`,
		"not base64":          `{"versions":{"1":"` + secretKey[:40] + `!!!!"},"current":1}`,
		"version zero":        `{"versions":{"0":"` + secretKey + `","1":"` + secretKey + `"},"current":1}`,
		"version leading 0":   `{"versions":{"01":"` + secretKey + `","1":"` + secretKey + `"},"current":1}`,
		"version not numeric": `{"versions":{"one":"` + secretKey + `","1":"` + secretKey + `"},"current":1}`,
		"version negative":    `{"versions":{"-1":"` + secretKey + `","1":"` + secretKey + `"},"current":1}`,
		"trailing garbage":    `{"versions":{"1":"` + secretKey + `"},"current":1} ` + secretKey,
		"key is a number":     `{"versions":{"1":42},"current":1}`,
		"key unquoted":        `{"versions":{"1":` + secretKey + `},"current":1}`,
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := LoadLocal(writeFile(t, data, 0o600))
			if !errors.Is(err, ErrKeyFile) {
				t.Fatalf("LoadLocal = %v, want ErrKeyFile", err)
			}
			assertAbsent(t, "error", err.Error(), string(bytes.Repeat([]byte{0x42}, kekSize)))
			// Not even one character: json's own messages would quote
			// the 'Q' that starts the unquoted key.
			if strings.Contains(err.Error(), secretKey[8:32]) || strings.Contains(err.Error(), "'"+secretKey[:1]+"'") {
				t.Errorf("error quotes the key: %v", err)
			}
		})
	}
}

func TestLocalRotateAndRetireRewriteFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	a, err := NewKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadLocal(path) // another process on the same file
	if err != nil {
		t.Fatal(err)
	}
	v1 := bytes.Clone(a.keys[1])
	mustRotate(t, a)
	mustRotate(t, a)

	loaded, err := LoadLocal(path)
	if err != nil {
		t.Fatalf("LoadLocal after Rotate: %v", err)
	}
	if vs, _ := loaded.Versions(ctx); !slices.Equal(vs, []int{1, 2, 3}) || loaded.current != 3 {
		t.Errorf("file after two rotations: versions %v current %d; want [1 2 3] and 3", vs, loaded.current)
	}
	if !bytes.Equal(loaded.keys[1], v1) {
		t.Error("Rotate changed an old key")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Rotate %04o, want 0600", fi.Mode().Perm())
	}

	// b still knows only version 1 until it reloads.
	if cur, _ := b.Current(ctx); cur != 1 {
		t.Errorf("other holder's Current = %d before Reload, want 1", cur)
	}
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if cur, _ := b.Current(ctx); cur != 3 {
		t.Errorf("other holder's Current = %d after Reload, want 3", cur)
	}

	if err := a.Retire(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if vs, _ := a.Versions(ctx); !slices.Equal(vs, []int{3}) {
		t.Errorf("Versions after Retire(2) = %v, want [3]", vs)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(file), base64.StdEncoding.EncodeToString(v1)) {
		t.Error("the retired key is still in the file")
	}
	if n := mustRotate(t, a); n != 4 {
		t.Errorf("Rotate after Retire = %d, want 4 (versions are never reused)", n)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key file (temporary files left?)", len(entries))
	}
}

// TestLocalUnwrapReloads checks that a holder meeting a version newer than
// any it knows re-reads the key file, so values sealed by another process
// after a rotation open everywhere.
func TestLocalUnwrapReloads(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys.json")
	a, err := NewKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	mustRotate(t, a)
	s := mustSeal(t, newTestVault(t, a), acme, "from a")
	vb := newTestVault(t, b)

	// Within the throttle, b does not re-read the file.
	if _, err := vb.Open(ctx, acme, s); !errors.Is(err, ErrVersionUnavailable) {
		t.Fatalf("Open right after load = %v, want ErrVersionUnavailable", err)
	}
	b.mu.Lock()
	b.lastReload = time.Now().Add(-reloadEvery)
	b.mu.Unlock()
	if got := mustOpen(t, vb, acme, s); got != "from a" {
		t.Errorf("Open after reload = %q", got)
	}
	// Old versions never trigger a reload.
	b.mu.Lock()
	b.lastReload = time.Time{}
	b.mu.Unlock()
	if _, err := b.Unwrap(ctx, 0, make([]byte, 60), acme.aad()); !errors.Is(err, ErrVersionUnavailable) {
		t.Errorf("Unwrap of version 0 = %v", err)
	}
	if b.lastReload != (time.Time{}) {
		t.Error("an old version made the holder reload")
	}
}

func TestLocalFromEnv(t *testing.T) {
	ctx := context.Background()
	key := b64Key(0x37)
	l, err := LocalFromEnv(" " + key + "\n")
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVault(t, l)
	s := mustSeal(t, v, acme, "env")
	if s.KeyID != LocalID || s.KeyVersion != 1 {
		t.Errorf("sealed under %s v%d", s.KeyID, s.KeyVersion)
	}
	_, err = l.Rotate(ctx)
	if !errors.Is(err, ErrCannotRotate) || !strings.Contains(err.Error(), "key file") {
		t.Errorf("Rotate = %v, want ErrCannotRotate pointing at a key file", err)
	}
	if err := l.Retire(ctx, 1); !errors.Is(err, ErrRetireCurrent) {
		t.Errorf("Retire(1) = %v, want ErrRetireCurrent", err)
	}
	if err := l.Reload(); err != nil {
		t.Errorf("Reload = %v", err)
	}

	// Moving to a key file with the same key as version 1 keeps values.
	file, err := LoadLocal(writeFile(t, `{"versions":{"1":"`+key+`"},"current":1}`, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustOpen(t, newTestVault(t, file), acme, s); got != "env" {
		t.Errorf("value opens under the key file as %q", got)
	}

	bad := map[string]string{
		"empty":      "",
		"not base64": "SENTINELKEY-" + key[:20] + "!!",
		"16 bytes":   base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x37}, 16)),
		"33 bytes":   base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x37}, 33)),
		"url base64": strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(append(bytes.Repeat([]byte{0xfb}, 31), 0xff))),
	}
	for name, value := range bad {
		t.Run(name, func(t *testing.T) {
			l, err := LocalFromEnv(value)
			if !errors.Is(err, ErrKey) || l != nil {
				t.Fatalf("LocalFromEnv = %v, %v; want ErrKey", l, err)
			}
			if value != "" && strings.Contains(err.Error(), value) {
				t.Errorf("error quotes the value: %v", err)
			}
		})
	}
}

func TestEncodeKeyFileRoundTrip(t *testing.T) {
	keys := map[int][]byte{1: bytes.Repeat([]byte{1}, kekSize), 7: bytes.Repeat([]byte{7}, kekSize), 12: bytes.Repeat([]byte{12}, kekSize)}
	got, cur, err := parseKeyFile(encodeKeyFile(keys, 7))
	if err != nil {
		t.Fatal(err)
	}
	if cur != 7 || len(got) != 3 {
		t.Fatalf("parsed current %d, %d keys", cur, len(got))
	}
	for v, k := range keys {
		if !bytes.Equal(got[v], k) {
			t.Errorf("version %d differs", v)
		}
	}
}
