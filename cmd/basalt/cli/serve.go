package cli

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/basaltos/basalt/contract/bundle"
	"github.com/basaltos/basalt/internal/errclass"
)

func newServeCmd(_ *globalOptions) *cobra.Command {
	var listen string
	var writeIndex bool
	cmd := &cobra.Command{
		Use:   "serve DIR",
		Short: "Serve update bundles as channels over HTTP (index per channel, ETag, Range)",
		Long: `Serve DIR over HTTP as update channels. Every directory holding *.bundle
files is a channel; CHANNEL/index.json lists the newest bundle per board and
compat (devices poll it: update.channel: http://HOST:PORT/CHANNEL), and the
bundles are served with ETag and Range support, so devices resume interrupted
downloads. A channel is plain static files: --write-index writes each
index.json into DIR and exits, for any web server, CDN or object store.

  basalt serve out/ --listen 127.0.0.1:8080
  basalt serve channels/ --write-index`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
				return errclass.Invalid(fmt.Errorf("%s: not a directory", dir))
			}
			if writeIndex {
				idx, err := indexChannels(dir)
				if err != nil {
					return err
				}
				for ch, ix := range idx {
					b, _ := json.MarshalIndent(ix, "", "  ")
					p := filepath.Join(dir, filepath.FromSlash(ch), bundle.IndexName)
					if err := os.WriteFile(p+".tmp", append(b, '\n'), 0o644); err != nil {
						return err
					}
					if err := os.Rename(p+".tmp", p); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d bundles\n", p, len(ix.Bundles))
				}
				return nil
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "serving %s on http://%s\n", dir, l.Addr())
			srv := &http.Server{Handler: &channelServer{dir: dir}, ReadHeaderTimeout: 10 * time.Second}
			return srv.Serve(l)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().BoolVar(&writeIndex, "write-index", false, "write CHANNEL/index.json files into DIR and exit")
	return cmd
}

// channelServer serves index.json per channel (computed from the bundles
// on each request, cached by the directory's state) and the files.
type channelServer struct {
	dir string
	mu  sync.Mutex
}

func (s *channelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "GET or HEAD only", http.StatusMethodNotAllowed)
		return
	}
	p := path.Clean("/" + r.URL.Path)
	if path.Base(p) == bundle.IndexName {
		s.mu.Lock()
		idx, err := indexChannels(s.dir)
		s.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ix, ok := idx[strings.Trim(path.Dir(p), "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, _ := json.MarshalIndent(ix, "", "  ")
		sum := sha256.Sum256(b)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
		http.ServeContent(w, r, bundle.IndexName, time.Time{}, strings.NewReader(string(b)))
		return
	}
	f, err := os.Open(filepath.Join(s.dir, filepath.FromSlash(p)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		http.NotFound(w, r)
		return
	}
	if strings.HasSuffix(p, ".bundle") {
		// The manifest's sha256 names the bundle's content (it lists every payload's).
		if raw, _, err := bundle.ReadHead(tar.NewReader(f)); err == nil {
			sum := sha256.Sum256(raw)
			w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
		}
		w.Header().Set("Content-Type", "application/x-tar")
	}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// indexChannels reads every *.bundle under dir and returns, per channel
// (the bundle's directory relative to dir, "" for dir itself), the newest
// bundle per board and compat. Unreadable bundles are skipped.
func indexChannels(dir string) (map[string]bundle.Index, error) {
	newest := map[string]map[string]bundle.IndexEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".bundle") {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		raw, _, err := bundle.ReadHead(tar.NewReader(f))
		if err != nil {
			return nil
		}
		m, err := bundle.ParseManifest(raw)
		if err != nil {
			return nil
		}
		fi, err := f.Stat()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		ch := filepath.ToSlash(filepath.Dir(rel))
		if ch == "." {
			ch = ""
		}
		sum := sha256.Sum256(raw)
		e := bundle.IndexEntry{Image: m.Image, Version: m.Version, Board: m.Board, Compat: m.Compat, File: filepath.Base(p), Size: fi.Size(), ManifestSHA256: hex.EncodeToString(sum[:])}
		if newest[ch] == nil {
			newest[ch] = map[string]bundle.IndexEntry{}
		}
		k := m.Board + "\x00" + m.Compat
		if old, ok := newest[ch][k]; ok {
			if c, err := bundle.CompareVersions(m.Version, old.Version); err != nil || c <= 0 {
				return nil
			}
		}
		newest[ch][k] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]bundle.Index{}
	for ch, m := range newest {
		var ix bundle.Index
		for _, e := range m {
			ix.Bundles = append(ix.Bundles, e)
		}
		slices.SortFunc(ix.Bundles, func(a, b bundle.IndexEntry) int {
			return strings.Compare(a.Board+"\x00"+a.Compat, b.Board+"\x00"+b.Compat)
		})
		out[ch] = ix
	}
	return out, nil
}
