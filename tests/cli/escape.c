// Run inside a kiln step: every way out of the sandbox's read-only world that the tests know, each
// reported on one line as "refused: ATTACK: SYSCALL: ERRNO" or "ALLOWED: ATTACK: SYSCALL".
//
//   escape TOOLCHAIN_FILE INPUT_DIR
//
// TOOLCHAIN_FILE is a file of the read-only toolchain (/usr), INPUT_DIR a read-only input holding
// a file named "data". Attacks that need new namespaces run in a child, so the parent's state
// stays as the step got it. Nothing here is meant to succeed: the test fails on any ALLOWED line.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

struct kiln_mount_attr {
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

static const char *toolchain_file, *input_dir;
static char input_file[4096], input_new[4096];

// Reports one attempt: a negative result is a refusal (with errno), anything else an escape.
static void attempt(const char *attack, const char *call, long result) {
    if (result < 0) {
        printf("refused: %s: %s: %s\n", attack, call, strerrorname_np(errno));
    } else {
        printf("ALLOWED: %s: %s\n", attack, call);
    }
    fflush(stdout);
}

// Opens for writing and writes a byte: refused at open or at write.
static void write_to(const char *attack, const char *path, int flags) {
    int fd = open(path, flags | O_WRONLY, 0644);
    if (fd < 0) {
        attempt(attack, "open", -1);
        return;
    }
    attempt(attack, "write", write(fd, "x", 1) == 1 ? 0 : -1);
    close(fd);
}

static long mount_setattr_clear_readonly(const char *path) {
    struct kiln_mount_attr attr = {.attr_clr = MOUNT_ATTR_RDONLY};
    return syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &attr, sizeof attr);
}

// Every mount-tree change the step's own namespaces could allow, aimed at the toolchain and the
// input (`where` names the namespace they run in).
static void mount_attacks(const char *where) {
    char name[256];
#define NAME(what) (snprintf(name, sizeof name, "%s: %s", where, what), name)
    attempt(NAME("remount the toolchain writable"), "mount",
            mount(NULL, "/usr", NULL, MS_REMOUNT | MS_BIND, NULL));
    attempt(NAME("remount the input writable"), "mount",
            mount(NULL, input_dir, NULL, MS_REMOUNT | MS_BIND, NULL));
    attempt(NAME("clear the input's read-only flag"), "mount_setattr", mount_setattr_clear_readonly(input_dir));
    attempt(NAME("clear the toolchain's read-only flag"), "mount_setattr", mount_setattr_clear_readonly("/usr"));
    attempt(NAME("bind /build over the input"), "mount", mount("/build", input_dir, NULL, MS_BIND, NULL));
    attempt(NAME("tmpfs over the toolchain"), "mount", mount("tmpfs", "/usr", "tmpfs", 0, NULL));
    attempt(NAME("unmount the input"), "umount2", umount2(input_dir, MNT_DETACH));
    attempt(NAME("unmount the toolchain"), "umount2", umount2("/usr", 0));
    mkdir("/tmp/kiln-proc", 0755);
    attempt(NAME("mount a new proc"), "mount", mount("proc", "/tmp/kiln-proc", "proc", 0, NULL));
    // A detached copy of a mount, or a new file system, harms nothing until it is attached:
    // each chain is reported at the step that refused it.
    long tree = syscall(SYS_open_tree, AT_FDCWD, "/build", OPEN_TREE_CLONE);
    if (tree < 0) {
        attempt(NAME("attach a clone of /build over the input"), "open_tree", tree);
    } else {
        attempt(NAME("attach a clone of /build over the input"), "move_mount",
                syscall(SYS_move_mount, (int)tree, "", AT_FDCWD, input_dir, MOVE_MOUNT_F_EMPTY_PATH));
        close((int)tree);
    }
    long context = syscall(SYS_fsopen, "tmpfs", 0);
    long mounted = context < 0 ? context : syscall(SYS_fsconfig, (int)context, 6 /* FSCONFIG_CMD_CREATE */, NULL, NULL, 0);
    mounted = mounted < 0 ? mounted : syscall(SYS_fsmount, (int)context, 0, 0);
    const char *step = context < 0 ? "fsopen" : "fsmount";
    if (mounted >= 0) {
        step = "move_mount";
        mounted = syscall(SYS_move_mount, (int)mounted, "", AT_FDCWD, "/usr", MOVE_MOUNT_F_EMPTY_PATH);
    }
    attempt(NAME("attach a new tmpfs over the toolchain"), step, mounted);
    mkdir("/build/kiln-old-root", 0755);
    attempt(NAME("pivot the root"), "pivot_root", syscall(SYS_pivot_root, "/build", "/build/kiln-old-root"));
#undef NAME
}

// After the namespace changes a child made, writes that a writable mount would let through.
static void write_attacks(const char *where) {
    char name[256];
    snprintf(name, sizeof name, "%s: write the input", where);
    write_to(name, input_file, 0);
    snprintf(name, sizeof name, "%s: write the toolchain", where);
    write_to(name, toolchain_file, 0);
}

static int in_child(void (*attack)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        attack();
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void new_mount_namespace(void) {
    long result = unshare(CLONE_NEWNS);
    attempt("new mount namespace", "unshare", result);
    if (result == 0) {
        mount_attacks("in a new mount namespace");
        write_attacks("in a new mount namespace");
    }
}

static void new_user_namespace(void) {
    long result = unshare(CLONE_NEWUSER | CLONE_NEWNS);
    if (result < 0) {
        attempt("new user and mount namespaces", "unshare", result);
        return;
    }
    // The new namespace maps nothing yet: mapping uid 0 would give it every capability there.
    write_to("map uid 0 in a new user namespace", "/proc/self/uid_map", 0);
    write_to("deny setgroups in a new user namespace", "/proc/self/setgroups", 0);
    mount_attacks("in new user and mount namespaces");
    write_attacks("in new user and mount namespaces");
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: escape TOOLCHAIN_FILE INPUT_DIR\n");
        return 2;
    }
    toolchain_file = argv[1];
    input_dir = argv[2];
    snprintf(input_file, sizeof input_file, "%s/data", input_dir);
    snprintf(input_new, sizeof input_new, "%s/new", input_dir);

    mount_attacks("in the step's namespaces");
    in_child(new_mount_namespace);
    in_child(new_user_namespace);
    // The same through clone and clone3, which take namespace flags too.
    long child = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
    if (child == 0) {
        _exit(0);
    }
    if (child > 0) {
        waitpid((pid_t)child, NULL, 0);
    }
    attempt("new user namespace", "clone", child);
    struct {
        unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
    child = syscall(SYS_clone3, &args, sizeof args);
    if (child == 0) {
        _exit(0);
    }
    if (child > 0) {
        waitpid((pid_t)child, NULL, 0);
    }
    attempt("new user namespace", "clone3", child);

    // The input's file: every way to change it, its name or its metadata.
    write_to("write the input's file", input_file, 0);
    write_to("append to the input's file", input_file, O_APPEND);
    write_to("create a file in the input", input_new, O_CREAT);
    attempt("truncate the input's file", "truncate", truncate(input_file, 0));
    attempt("remove the input's file", "unlink", unlink(input_file));
    attempt("move the input's file out", "rename", rename(input_file, "/build/stolen"));
    attempt("hard-link the input's file", "link", link(input_file, "/build/linked"));
    attempt("chmod the input's file", "chmod", chmod(input_file, 0777));
    attempt("chown the input's file", "chown", chown(input_file, 0, 0));
    attempt("touch the input's file", "utimensat", utimensat(AT_FDCWD, input_file, NULL, 0));
    attempt("set an attribute on the input's file", "setxattr", setxattr(input_file, "user.kiln", "x", 1, 0));

    // The toolchain.
    write_to("write a toolchain file", toolchain_file, 0);
    write_to("create a file in the toolchain", "/usr/kiln-escape", O_CREAT);
    attempt("chmod a toolchain file", "chmod", chmod(toolchain_file, 04755));

    // The host's kernel through /proc, devices and namespaces.
    write_to("deny setgroups", "/proc/self/setgroups", 0);
    write_to("set a kernel parameter", "/proc/sys/kernel/core_pattern", 0);
    write_to("write the sysrq trigger", "/proc/sysrq-trigger", 0);
    attempt("chmod the null device", "chmod", chmod("/dev/null", 0));
    attempt("chown the null device", "chown", chown("/dev/null", 0, 0));
    attempt("make a device node", "mknod", mknod("/build/kiln-null", S_IFCHR | 0666, makedev(1, 3)));
    attempt("open the terminal", "open", open("/dev/tty", O_RDWR));
    attempt("type into a terminal", "ioctl", ioctl(0, TIOCSTI, "x"));
    attempt("change the root", "chroot", chroot("/build"));
    attempt("set the hostname", "sethostname", sethostname("escaped", 7));
    attempt("raise I/O privileges", "iopl", syscall(SYS_iopl, 3));
    struct {
        unsigned int bytes;
        int type;
        unsigned char data[128];
    } handle = {.bytes = 128};
    int mount_id = 0;
    long named = syscall(SYS_name_to_handle_at, AT_FDCWD, toolchain_file, &handle, &mount_id, 0);
    attempt("open a file by handle", named < 0 ? "name_to_handle_at" : "open_by_handle_at",
            named < 0 ? named : syscall(SYS_open_by_handle_at, AT_FDCWD, &handle, O_RDONLY));
    attempt("read the session keyring", "keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3, 0));
    attempt("add a key", "add_key", syscall(SYS_add_key, "user", "kiln", "x", 1, -3));

    // Capabilities back: raising any from the empty sets.
    struct {
        unsigned int version;
        int pid;
    } header = {0x20080522, 0};
    struct {
        unsigned int effective, permitted, inheritable;
    } data[2] = {{~0u, ~0u, 0}, {~0u, ~0u, 0}};
    attempt("raise every capability", "capset", syscall(SYS_capset, &header, data));
    printf("done\n");
    return 0;
}
