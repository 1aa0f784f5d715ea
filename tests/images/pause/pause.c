/*
 * The pod sandbox process for the test cluster's containerd. A pod's
 * namespaces live as long as this process does; it only sleeps, reaps
 * orphaned children (it is PID 1 of the pod's PID namespace when shared),
 * and exits cleanly on SIGINT or SIGTERM. Built statically so the image is a
 * single file on top of scratch; images cannot be pulled on the test machine.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
        sigaction(SIGCHLD, &on_child, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
