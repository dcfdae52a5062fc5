package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// run runs cmd so that nothing it starts outlives it, nor reactor:
//
//   - it runs in a process group of its own, killed whole on timeout or
//     cancellation (killGroup), and when the command exits, whatever it
//     left running in the group is killed too: an action ends with its
//     command;
//   - while it runs, its group is listed with execGroups' watcher, which
//     kills it if reactor dies however it dies (kill -9, a forced exit);
//   - the command itself gets SIGKILL as its parent-death signal, which
//     covers the moment between the fork and the listing.
//
// A process that leaves the group (setsid, a daemon's double fork) is on
// its own, as it asked.
func run(cmd *exec.Cmd, log *slog.Logger) error {
	// The parent-death signal comes when the thread that forked the child
	// exits, not the process (prctl(2), PR_SET_PDEATHSIG), and Go ends a
	// thread when a goroutine locked to it exits. Holding this goroutine
	// on its thread until the child is reaped keeps every other one off
	// it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = killGroup(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	if err := execGroups.add(pgid); err != nil && log != nil {
		log.Warn("exec: the command's process group would outlive reactor", "command", cmd.Args[0], "err", err)
	}
	// Until Wait reaps the command, its pid, the group's id, cannot be
	// given to another process: the group is killed and unlisted before.
	if waitExited(pgid) == nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	execGroups.remove(pgid)
	return cmd.Wait()
}

// waitExited waits until the process pid has exited, without reaping it.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// watchGroups is the watcher: a shell that reads "+ PGID" and "- PGID"
// lines, keeps the set of groups listed, and at end of input kills every
// group still in it. Signals that reach it by accident (a group-wide
// SIGTERM, Ctrl-C) are ignored; it exits at end of input.
const watchGroups = `trap '' HUP INT QUIT TERM PIPE
g=' '
while read -r op pg; do
	case $op in
	+) g="$g$pg " ;;
	-) case $g in *" $pg "*) g="${g%% $pg *} ${g#* $pg }" ;; esac ;;
	esac
done
for pg in $g; do kill -s KILL -- "-$pg" 2>/dev/null; done`

// groupKeeper lists the process groups of running commands with a
// watcher process. The watcher reads them from a pipe whose write end only
// this process holds: when it exits, however it exits, the kernel closes
// the pipe, and the watcher kills what is still listed. Unlike a
// parent-death signal, this reaches the command's children, and it does
// not depend on which thread forked what.
type groupKeeper struct {
	mu      sync.Mutex
	w       *os.File // the watcher's input; nil until started
	watcher *os.Process
	groups  map[int]struct{}
}

// execGroups is the process's keeper. It is package-level because what it
// watches is the process's death, one per process.
var execGroups = newGroupKeeper()

func newGroupKeeper() *groupKeeper {
	return &groupKeeper{groups: make(map[int]struct{})}
}

// add lists the group pgid, starting the watcher if there is none or it
// died.
func (k *groupKeeper) add(pgid int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.groups[pgid] = struct{}{}
	if k.w != nil {
		if _, err := fmt.Fprintf(k.w, "+ %d\n", pgid); err == nil {
			return nil
		}
		k.stop() // it died: a new one gets the whole list
	}
	if err := k.start(); err != nil {
		return err
	}
	for g := range k.groups {
		if _, err := fmt.Fprintf(k.w, "+ %d\n", g); err != nil {
			k.stop()
			return fmt.Errorf("group watcher: %w", err)
		}
	}
	return nil
}

// remove unlists the group pgid.
func (k *groupKeeper) remove(pgid int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.groups, pgid)
	if k.w != nil {
		if _, err := fmt.Fprintf(k.w, "- %d\n", pgid); err != nil {
			k.stop()
		}
	}
}

// start starts a watcher. Call with k.mu held.
func (k *groupKeeper) start() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("group watcher: %w", err)
	}
	defer r.Close() // the watcher has its copy
	cmd := exec.Command("/bin/sh", "-c", watchGroups)
	cmd.Stdin = r
	// A group of its own: a Ctrl-C at reactor's terminal does not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("group watcher: %w", err)
	}
	k.w, k.watcher = w, cmd.Process
	return nil
}

// stop closes the input of a watcher found dead, and reaps it. Call with
// k.mu held.
func (k *groupKeeper) stop() {
	k.w.Close()
	_ = k.watcher.Kill()
	_, _ = k.watcher.Wait()
	k.w, k.watcher = nil, nil
}
