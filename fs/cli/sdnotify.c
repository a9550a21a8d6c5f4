/* sdnotify.c - the systemd notify protocol for a foreground node
 * (sdnotify.h), through libsystemd's sd_notify: one datagram per state
 * change to NOTIFY_SOCKET. A failed send is not an error of the node (a
 * manager that went away must not stop it): it is logged once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "../../raft/raft.h"
#include "sdnotify.h"

static void send_state(struct sdnotify* s, const char* state)
{
    int rv = sd_notify(0, state);
    if (rv < 0 && !s->warned) {
        s->warned = true;
        cli_log(s->log, RAFT_TRACE_WARN, "systemd notify socket %s: %s",
                getenv("NOTIFY_SOCKET"), strerror(-rv));
    }
}

void sdnotify_init(struct sdnotify* s,
                   bool foreground,
                   const struct cli_log* log)
{
    const char* sock = getenv("NOTIFY_SOCKET");
    memset(s, 0, sizeof(*s));
    s->log = log;
    s->on = foreground && sock != NULL && sock[0] != '\0';
}

static void send_status(struct sdnotify* s, const char* prefix)
{
    char msg[SDNOTIFY_STATUS_MAX + 32];
    snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix, s->last);
    send_state(s, msg);
}

void sdnotify_status(struct sdnotify* s, const char* fmt, ...)
{
    char text[SDNOTIFY_STATUS_MAX];
    va_list ap;
    if (!s->on) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (strcmp(text, s->last) == 0) {
        return;
    }
    snprintf(s->last, sizeof(s->last), "%s", text);
    send_status(s, "");
}

static void role_status(struct sdnotify* s)
{
    const char* leader = node_leader_name(s->node);
    sdnotify_status(s, "role %s, leader %s", node_role_name(s->node),
                    leader != NULL ? leader : "(none)");
}

static void status_timer_cb(uv_timer_t* t)
{
    role_status(t->data);
}

void sdnotify_ready(struct sdnotify* s, uv_loop_t* loop, struct node* n)
{
    if (!s->on) {
        return;
    }
    s->node = n;
    s->last[0] = '\0';
    const char* leader = node_leader_name(n);
    snprintf(s->last, sizeof(s->last), "role %s, leader %s", node_role_name(n),
             leader != NULL ? leader : "(none)");
    send_status(s, "READY=1\n");
    if (uv_timer_init(loop, &s->timer) == 0) {
        s->timer_init = true;
        s->timer.data = s;
        uv_timer_start(&s->timer, status_timer_cb, SDNOTIFY_STATUS_MS,
                       SDNOTIFY_STATUS_MS);
    }
}

void sdnotify_stopping(struct sdnotify* s, const char* why)
{
    if (!s->on) {
        return;
    }
    if (s->timer_init) {
        uv_timer_stop(&s->timer);
    }
    snprintf(s->last, sizeof(s->last), "stopping (%s)", why);
    send_status(s, "STOPPING=1\n");
}
