package reload

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is how long a config file must stay quiet after a change
// before it is reloaded: editors write in several steps, and a Kubernetes
// ConfigMap update is a burst of creates, renames and removes.
const DefaultDebounce = 100 * time.Millisecond

// maxDelay bounds how long a stream of changes can postpone a reload.
const maxDelay = time.Second

// Watcher reports changes to one file. It watches the file's directory, not
// the file: editors save by writing a new file and renaming it over the old
// one, and Kubernetes updates a mounted ConfigMap by swapping a "..data"
// symlink, and a watch on the file itself would miss both (or be lost with
// the replaced inode). When the path is a symlink, the directory of its
// target is watched too, and re-resolved after every change.
type Watcher struct {
	path     string
	base     string
	home     string // the directory of path, always watched
	debounce time.Duration
	log      *zap.Logger
	fs       *fsnotify.Watcher
	extra    string // the directory of the symlink target, when elsewhere
	target   string // the base name of the symlink target
}

// NewWatcher starts watching path's directory; changes are reported by Run.
func NewWatcher(path string, debounce time.Duration, log *zap.Logger) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = zap.NewNop()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", path, err)
	}
	w := &Watcher{path: abs, base: filepath.Base(abs), home: filepath.Dir(abs), debounce: debounce, log: log, fs: fw}
	if err := fw.Add(w.home); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watching directory %s: %w", w.home, err)
	}
	w.followSymlink()
	return w, nil
}

// followSymlink watches the directory of the file path resolves to, when it
// is not path's own directory.
func (w *Watcher) followSymlink() {
	resolved, err := filepath.EvalSymlinks(w.path)
	if err != nil {
		return // the file may be between a remove and a create; the next event retries
	}
	dir, base := filepath.Dir(resolved), filepath.Base(resolved)
	w.target = base
	if dir == w.extra {
		return
	}
	if w.extra != "" {
		_ = w.fs.Remove(w.extra)
		w.extra = ""
	}
	if dir == w.home {
		return
	}
	if err := w.fs.Add(dir); err != nil {
		w.log.Warn("cannot watch the directory the config symlink points into; SIGHUP still reloads",
			zap.String("directory", dir), zap.Error(err))
		return
	}
	w.extra = dir
}

// relevant reports whether an event may have changed the file's content.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false // attributes only; the content is what matters
	}
	name := filepath.Base(ev.Name)
	// "..data" and "..2026_11_25_..." are how Kubernetes swaps a mounted volume.
	return name == w.base || name == w.target || strings.HasPrefix(name, "..")
}

// Run calls changed after each burst of relevant events has been quiet for
// the debounce period (or has lasted a second), from this goroutine only,
// until ctx is done; then it closes the watch.
func (w *Watcher) Run(ctx context.Context, changed func()) {
	defer w.fs.Close()
	var (
		timer *time.Timer
		fire  <-chan time.Time
		first time.Time
	)
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if !w.relevant(ev) {
				continue
			}
			now := time.Now()
			switch {
			case timer == nil:
				first = now
				timer = time.NewTimer(w.debounce)
				fire = timer.C
			case now.Sub(first) < maxDelay:
				timer.Reset(w.debounce)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// Overflow and the like: reload to be sure nothing was missed.
			w.log.Warn("config file watch reported an error; reloading to be safe", zap.Error(err))
			if timer == nil {
				first = time.Now()
				timer = time.NewTimer(w.debounce)
				fire = timer.C
			}
		case <-fire:
			timer, fire = nil, nil
			w.followSymlink()
			changed()
		}
	}
}

// Close stops the watch without Run; Run closes it itself when ctx is done.
func (w *Watcher) Close() error { return w.fs.Close() }
