package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FS is a mounted lazy filesystem.
type FS struct {
	under, mnt string

	mu     sync.Mutex // serializes writes with their undo records
	server *fuse.Server
	logs   map[uint64]*fileLog // unsynced files, by inode
	synced int64               // fsyncs seen
}

// fileLog is what it takes to put one file back as it was at its last
// fsync.
type fileLog struct {
	f     *os.File // the file underneath, read-write
	size  int64    // its size at the last fsync
	undo  []extent // what the writes since overwrote, in order
	bytes int64    // bytes written since
}

type extent struct {
	off int64
	old []byte
}

// Loss is what a PowerLoss dropped.
type Loss struct {
	// Files were put back as they were at their last fsync.
	Files int
	// Bytes counts the bytes written to them since.
	Bytes int64
}

// New mounts a lazy filesystem over a fresh directory under t.TempDir() on
// another one, and returns it; t.Cleanup unmounts it. It skips the test,
// saying why, where FUSE cannot be mounted.
func New(t testing.TB) *FS {
	t.Helper()
	base := t.TempDir()
	l, err := Mount(filepath.Join(base, "disk"), filepath.Join(base, "mnt"))
	if err != nil {
		t.Skipf("lazyfs: cannot mount a FUSE filesystem (needs Linux, root and /dev/fuse): %v", err)
	}
	t.Cleanup(func() {
		if err := l.Unmount(); err != nil {
			t.Errorf("lazyfs: %v", err)
		}
	})
	return l
}

// Mount mounts a lazy filesystem of directory under on mountpoint,
// creating both if need be.
func Mount(under, mountpoint string) (*FS, error) {
	for _, d := range []string{under, mountpoint} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("lazyfs: %w", err)
		}
	}
	l := &FS{under: under, mnt: mountpoint, logs: make(map[uint64]*fileLog)}
	if err := l.mount(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *FS) mount() error {
	ops, err := fs.NewLoopbackRoot(l.under)
	if err != nil {
		return fmt.Errorf("lazyfs: %w", err)
	}
	lb := ops.(*fs.LoopbackNode)
	root := &node{LoopbackNode: lb, lazy: l}
	lb.RootData.RootNode = root
	srv, err := fs.Mount(l.mnt, root, &fs.Options{MountOptions: fuse.MountOptions{
		DirectMountStrict: true, // mount(2) as root; no fusermount
		FsName:            l.under,
		Name:              "lazyfs",
		MaxBackground:     64,
	}})
	if err != nil {
		return fmt.Errorf("lazyfs: mount %s: %w", l.mnt, err)
	}
	l.server = srv
	return nil
}

// Dir is the mountpoint: what runs on it is subject to PowerLoss.
func (l *FS) Dir() string { return l.mnt }

// Underneath is the directory the filesystem passes through to.
func (l *FS) Underneath() string { return l.under }

// Fsyncs counts the fsyncs seen, across power losses.
func (l *FS) Fsyncs() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.synced
}

// PowerLoss unmounts the filesystem, which no process may be using (kill
// them first: a killed process's descriptors close), puts every file
// written since its last fsync back as it was then, and mounts it again.
func (l *FS) PowerLoss() (Loss, error) {
	if err := l.unmount(); err != nil {
		return Loss{}, err
	}
	loss, err := l.drop()
	if err != nil {
		return loss, err
	}
	return loss, l.mount()
}

// Unmount unmounts the filesystem, keeping every write: a clean shutdown.
func (l *FS) Unmount() error {
	if err := l.unmount(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for ino, lg := range l.logs {
		_ = lg.f.Close() // read-write, nothing buffered
		delete(l.logs, ino)
	}
	return nil
}

func (l *FS) unmount() error {
	if l.server == nil {
		return nil
	}
	// A descriptor of a process just killed may still be closing.
	var err error
	for range 50 {
		if err = l.server.Unmount(); err == nil {
			l.server.Wait()
			l.server = nil
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("lazyfs: unmount %s: %w", l.mnt, err)
}

// drop puts every unsynced file back as it was at its last fsync.
func (l *FS) drop() (Loss, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var loss Loss
	var errs []error
	for ino, lg := range l.logs {
		for i := len(lg.undo) - 1; i >= 0; i-- {
			if _, err := lg.f.WriteAt(lg.undo[i].old, lg.undo[i].off); err != nil {
				errs = append(errs, err)
			}
		}
		if err := lg.f.Truncate(lg.size); err != nil {
			errs = append(errs, err)
		}
		_ = lg.f.Close() // read-write, nothing buffered
		delete(l.logs, ino)
		loss.Files++
		loss.Bytes += lg.bytes
	}
	return loss, errors.Join(errs...)
}

// before records what a write of n bytes at off to fd is about to
// overwrite. l.mu must be held.
func (l *FS) before(fd int, off, n int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	lg := l.logs[st.Ino]
	if lg == nil {
		// The handle may be write-only: open the same file to read back.
		f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		lg = &fileLog{f: f, size: st.Size}
		l.logs[st.Ino] = lg
	}
	lg.bytes += n
	if off >= st.Size || n <= 0 {
		return nil // past the end: the truncate to size undoes it
	}
	old := make([]byte, min(off+n, st.Size)-off)
	if _, err := lg.f.ReadAt(old, off); err != nil {
		return err
	}
	lg.undo = append(lg.undo, extent{off: off, old: old})
	return nil
}

// fsync forgets the undo records of fd's file: it is on disk.
func (l *FS) fsync(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.synced++
	if lg := l.logs[st.Ino]; lg != nil {
		_ = lg.f.Close() // read-write, nothing buffered
		delete(l.logs, st.Ino)
	}
	return nil
}

// node is a loopback node whose files keep undo records.
type node struct {
	*fs.LoopbackNode
	lazy *FS
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
)

func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), lazy: n.lazy}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.truncatingPath(n.path(), 0); errno != 0 {
			return nil, 0, errno
		}
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.lazy.wrap(fh), fuseFlags, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if errno := n.truncatingPath(filepath.Join(n.path(), name), 0); errno != 0 && errno != syscall.ENOENT {
			return nil, nil, 0, errno
		}
	}
	in, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return in, n.lazy.wrap(fh), fuseFlags, 0
}

// Setattr records what a truncate by path drops before it does.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, isLazy := f.(*file); !isLazy {
		if size, ok := in.GetSize(); ok {
			if errno := n.truncatingPath(n.path(), int64(size)); errno != 0 {
				return errno
			}
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// path is the node's file in the directory underneath.
func (n *node) path() string {
	return filepath.Join(n.RootData.Path, n.EmbeddedInode().Path(nil))
}

// truncatingPath records what truncating the file at p to size drops.
func (n *node) truncatingPath(p string, size int64) syscall.Errno {
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer unix.Close(fd) // read-write, nothing buffered
	n.lazy.mu.Lock()
	defer n.lazy.mu.Unlock()
	return fs.ToErrno(n.lazy.truncating(fd, size))
}

// truncating records what truncating fd's file to size drops. l.mu must be
// held.
func (l *FS) truncating(fd int, size int64) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return l.before(fd, size, max(st.Size-size, 0))
}

func (l *FS) wrap(fh fs.FileHandle) fs.FileHandle {
	lf := fh.(*fs.LoopbackFile)
	fd, _ := lf.PassthroughFd() // the descriptor itself: no passthrough is asked of the kernel
	return &file{lf: lf, fd: fd, lazy: l}
}

// file is a loopback file whose writes keep undo records and whose fsync
// forgets them. It forwards only what it means to: not Writev, not
// PassthroughFd, which would bypass Write.
type file struct {
	lf   *fs.LoopbackFile
	fd   int
	lazy *FS
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileSetattrer = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
)

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	f.lazy.mu.Lock()
	defer f.lazy.mu.Unlock()
	if err := f.lazy.before(f.fd, off, int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	return f.lf.Write(ctx, data, off)
}

// Fsync makes the file's writes durable: the real fsync is skipped, the
// directory underneath is no disk under test.
func (f *file) Fsync(_ context.Context, _ uint32) syscall.Errno {
	return fs.ToErrno(f.lazy.fsync(f.fd))
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		f.lazy.mu.Lock()
		defer f.lazy.mu.Unlock()
		if err := f.lazy.truncating(f.fd, int64(size)); err != nil {
			return fs.ToErrno(err)
		}
	}
	return f.lf.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	f.lazy.mu.Lock()
	defer f.lazy.mu.Unlock()
	if err := f.lazy.before(f.fd, int64(off), 0); err != nil {
		return fs.ToErrno(err)
	}
	return f.lf.Allocate(ctx, off, size, mode)
}

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, out)
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}

func (f *file) Flush(ctx context.Context) syscall.Errno { return f.lf.Flush(ctx) }

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *file) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return f.lf.Getlk(ctx, owner, lk, flags, out)
}

func (f *file) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlk(ctx, owner, lk, flags)
}

func (f *file) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return f.lf.Setlkw(ctx, owner, lk, flags)
}
