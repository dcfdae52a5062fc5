package stream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gofrs/flock"
)

// LockFile is the lock file in a data dir. The process whose embedded server
// uses the dir holds an exclusive lock on it (flock on Unix, LockFileEx on
// Windows) and writes its pid in it; the OS releases the lock when the
// process exits, however it exits, so a stale file never blocks a restart.
const LockFile = "reactor.lock"

// ErrDataDirInUse is wrapped by the error StartServer returns when another
// process, or another Server of this one, uses the data dir: two servers on
// one file store would corrupt it.
var ErrDataDirInUse = errors.New("stream: data dir in use")

// DataDirInUseError is the error for a data dir locked by someone else.
type DataDirInUseError struct {
	// Dir is the data dir.
	Dir string
	// PID is the pid written in the lock file by its holder, or 0 when it
	// cannot be read.
	PID int
}

func (e *DataDirInUseError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("stream: data dir %q is in use by %s (lock %s): one process at a time may use a data dir",
		e.Dir, who, filepath.Join(e.Dir, LockFile))
}

func (e *DataDirInUseError) Unwrap() error { return ErrDataDirInUse }

// dirLock is the held lock of a data dir.
type dirLock struct{ fl *flock.Flock }

// lockDataDir takes dir's lock without waiting, or fails with a
// *DataDirInUseError, leaving the file as it was. dir must exist.
func lockDataDir(dir string) (*dirLock, error) {
	path := filepath.Join(dir, LockFile)
	fl := flock.New(path, flock.SetPermissions(0o600))
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("stream: lock data dir %q: %w", dir, err)
	}
	if !ok {
		return nil, &DataDirInUseError{Dir: dir, PID: readLockPID(path)}
	}
	// The pid is for the message of whoever finds the dir locked. Windows
	// locks the file's first byte, so there the write fails and the message
	// does without the pid.
	_ = os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	return &dirLock{fl: fl}, nil
}

// readLockPID returns the pid in the lock file at path, or 0.
func readLockPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// unlock empties the lock file, so that its pid is never read as a holder's
// after this one, and releases the lock.
func (l *dirLock) unlock() {
	_ = os.Truncate(l.fl.Path(), 0)
	_ = l.fl.Close()
}
