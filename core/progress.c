/* core/progress.c — the terminal progress bar (lmm/progress.h): bytes done / total,
 * rate, ETA; drawn on stderr with "\r" only when stderr is a terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "lmm/progress.h"

#define REDRAW_US 100000u

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* "812 B", "1.2 KiB", "3.4 GiB" */
static void fmt_bytes(double b, char *buf, size_t cap) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024.0 && u < 5) b /= 1024.0, u++;
    if (u == 0) snprintf(buf, cap, "%.0f B", b);
    else snprintf(buf, cap, b < 10 ? "%.2f %s" : b < 100 ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void fmt_secs(double s, char *buf, size_t cap) {
    if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

static int term_width(int fd) {
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

void lmm_progress_init(lmm_progress *p, const char *label, uint64_t total) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->fd = STDERR_FILENO;
    const char *env = getenv("LMM_PROGRESS");
    if (env && strcmp(env, "0") == 0) p->on = false;
    else if (env && strcmp(env, "1") == 0) p->on = true;
    else {
        const char *term = getenv("TERM");
        p->on = isatty(p->fd) && !(term && strcmp(term, "dumb") == 0);
    }
    p->t0_us = now_us();
}

void lmm_progress_format(const lmm_progress *p, uint64_t now, int width, char *buf, int cap) {
    if (width <= 0) width = 80;
    double el = now > p->t0_us ? (double)(now - p->t0_us) / 1e6 : 0.0;
    double rate = el > 0.05 ? (double)p->done / el : 0.0;
    char done[32], total[32], r[32] = "", eta[48] = "";
    fmt_bytes((double)p->done, done, sizeof done);
    if (rate > 0) {
        fmt_bytes(rate, r, sizeof r);
        strcat(r, "/s");
    }
    char tail[160];
    if (p->total) {
        fmt_bytes((double)p->total, total, sizeof total);
        uint64_t d = p->done < p->total ? p->done : p->total;
        int pct = (int)((double)d * 100.0 / (double)p->total);
        if (rate > 0 && d < p->total) {
            char s[32];
            fmt_secs((double)(p->total - d) / rate, s, sizeof s);
            snprintf(eta, sizeof eta, "  ETA %s", s);
        }
        snprintf(tail, sizeof tail, " %3d%%  %s/%s  %s%s", pct, done, total, r, eta);
        /* the bar takes what is left of the line once the longest tail fits, so that it
         * keeps its width while the numbers change */
        int room = width - 1 - (int)strlen(p->label) - 46 - 3;
        if (room > 40) room = 40;
        char bar[48] = "";
        if (room >= 8) {
            int fill = (int)((double)d * room / (double)p->total);
            bar[0] = '[';
            for (int i = 0; i < room; i++) bar[1 + i] = i < fill ? '#' : '.';
            bar[room + 1] = ']';
            bar[room + 2] = '\0';
        }
        snprintf(buf, (size_t)cap, "%s %s%s", p->label, bar, tail);
    } else {
        snprintf(buf, (size_t)cap, "%s  %s  %s", p->label, done, r);
    }
    /* never wider than the terminal: a wrapped line breaks "\r" redrawing */
    if ((int)strlen(buf) > width - 1) buf[width - 1] = '\0';
}

static void draw(lmm_progress *p, uint64_t now) {
    char line[512], out[520];
    lmm_progress_format(p, now, term_width(p->fd), line, sizeof line);
    int n = snprintf(out, sizeof out, "\r%s\033[K", line); /* erase what a longer line left */
    if (n > 0 && write(p->fd, out, (size_t)n) < 0) p->on = false;
    p->drawn = true;
    p->last_us = now;
}

void lmm_progress_set(lmm_progress *p, uint64_t done) {
    p->done = done;
    if (!p->on) return;
    uint64_t now = now_us();
    if (now - p->last_us >= REDRAW_US) draw(p, now);
}

void lmm_progress_add(lmm_progress *p, uint64_t n) { lmm_progress_set(p, p->done + n); }

void lmm_progress_done(lmm_progress *p) {
    if (!p->on) return;
    uint64_t now = now_us();
    double el = (double)(now - p->t0_us) / 1e6;
    char done[32], r[32] = "", s[32], line[512];
    fmt_bytes((double)p->done, done, sizeof done);
    fmt_secs(el, s, sizeof s);
    if (el > 0.05) {
        fmt_bytes((double)p->done / el, r, sizeof r);
        strcat(r, "/s");
    }
    int n = snprintf(line, sizeof line, "\r%s  %s in %s%s%s\033[K\n", p->label, done, el < 1 ? "<1s" : s,
                     r[0] ? ", " : "", r);
    if (n > 0 && write(p->fd, line, (size_t)n) < 0) p->on = false;
    p->on = false;
    p->drawn = false;
}

void lmm_progress_clear(lmm_progress *p) {
    if (p->on && p->drawn) {
        static const char erase[] = "\r\033[K";
        if (write(p->fd, erase, sizeof erase - 1) < 0) p->on = false;
    }
    p->drawn = false;
    p->on = false;
}
