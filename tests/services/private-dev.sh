#!/bin/sh
# Runs COMMAND with a /dev of its own, in which `/dev/log` is whatever COMMAND (a syslog
# daemon) binds there, so that the programs started later in the same mount namespace log
# to it and the machine's own /dev/log (present or not) is left alone.
#
# Usage: unshare --mount --propagation private -- sh private-dev.sh SCRATCH COMMAND [ARGS...]
#
# SCRATCH is an empty directory used for a moment to reach the real /dev. The new /dev is a
# tmpfs holding the real device nodes that daemons and PAM open (null, zero, full, random,
# urandom, tty), /dev/pts and /dev/shm, and the usual /proc links. Nothing here is visible
# outside the mount namespace, which ends with the last process in it.
set -eu
scratch=$1
shift
mount --rbind /dev "$scratch"
mount -t tmpfs -o mode=0755,nosuid banxdp-dev /dev
for node in null zero full random urandom tty; do
	: >"/dev/$node"
	mount --bind "$scratch/$node" "/dev/$node"
done
for dir in pts shm; do
	mkdir "/dev/$dir"
	mount --rbind "$scratch/$dir" "/dev/$dir"
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
umount -l "$scratch"
exec "$@"
