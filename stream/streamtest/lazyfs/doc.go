// Package lazyfs is a FUSE filesystem that loses what was not fsync'ed, for
// power-loss tests: the idea of LazyFS (used in Jepsen's analysis of NATS
// JetStream), as a passthrough over a directory with
// github.com/hanwen/go-fuse/v2.
//
// Every write goes through to the directory underneath at once, so what
// runs on the mount reads it back as from any filesystem, and a process
// that is killed loses nothing, as with the operating system's page cache.
// What a write overwrote, and the file's size before its first unsynced
// write, are kept in memory until the file is fsync'ed (fsync or fdatasync
// of any of its descriptors). PowerLoss unmounts, puts every unsynced file
// back as it was at its last fsync, and mounts again: the writes the disk
// never confirmed are gone.
//
// The model is the harsh one of a disk without a protected cache: file
// data not fsync'ed is lost, whole; metadata (creating, renaming, removing
// files and directories) is kept, as a journaling filesystem keeps it. A
// file created and written but never fsync'ed comes back empty.
//
// Mounting needs Linux, root and /dev/fuse; New skips the test, saying why,
// where they are missing.
package lazyfs
