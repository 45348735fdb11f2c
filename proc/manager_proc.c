/* manager_proc.c: the manager's server as a process of its own (multiprocessing.Manager()).
 *
 * kiln_manager_start starts manager_main through kiln_process_start with one end of a duplex
 * channel. The child creates the server (so the address, port 0 resolved, is known), sends back
 * its code and address, and serves. A thread of the child waits on the channel: anything arriving
 * on it, or its end of stream (kiln_manager_shutdown closed the parent's end, or the parent
 * died), stops the server; so the server never outlives its program and always removes its
 * socket file. The key travels to the child in the start argument; a NULL key is drawn by the
 * parent so that kiln_manager_authkey can tell it.
 *
 * Start argument: auth_timeout f64 | keylen u32 | key | address bytes (none: the default). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "manager_internal.h"

struct kiln_manager {
  kiln_process *proc;
  kiln_channel *ch; /* the parent's end; closing it stops the server */
  char *address;
  uint8_t key[KILN__MGR_KEY_MAX];
  size_t klen;
};

enum { START_TIMEOUT = 30, STOP_TIMEOUT = 5 };

/* The child's watcher waits on the parent's channel and on a private pair of its own: the
 * parent's channel is shared with the parent, so closing our copy cannot wake a thread blocked on
 * it (kiln_channel_close leaves a shared socket alone); a message on the private pair can. */
typedef struct watch {
  kiln_channel *chs[2]; /* the parent's channel, the private pair's receiving end */
  kiln_manager_server *s;
} watch;

static void *watch_main(void *arg) {
  watch *w = arg;
  size_t nready;
  /* a message, end of stream or an error: all stop the server */
  kiln_channel_wait(w->chs, 2, -1, &nready);
  kiln_manager_server_stop(w->s);
  return NULL;
}

/* Decodes the start argument into cfg (pointing into arg, address copied to *addr). */
static int decode_start(const uint8_t *a, size_t len, kiln_manager_config *cfg, char **addr) {
  kiln_manager_config_default(cfg);
  uint32_t klen;
  if (len < 12) return KILN_EINVAL;
  memcpy(&cfg->auth_timeout, a, 8);
  memcpy(&klen, a + 8, 4);
  if (klen == 0 || klen > len - 12) return KILN_EINVAL;
  cfg->authkey = a + 12, cfg->authkey_len = klen;
  size_t alen = len - 12 - klen;
  *addr = NULL;
  if (alen) {
    if (!(*addr = malloc(alen + 1))) return KILN_ENOMEM;
    memcpy(*addr, a + 12 + klen, alen);
    (*addr)[alen] = 0;
    cfg->address = *addr;
  }
  return 0;
}

/* The child: create, report (code i32 | address), serve until told, clean up. */
static int manager_main(const void *arg, size_t len) {
  kiln_channel *ch = kiln_process_channel(0);
  if (!ch) return 2;
  kiln_manager_config cfg;
  char *addr = NULL;
  kiln_manager_server *s = NULL;
  int rc = decode_start(arg, len, &cfg, &addr);
  if (!rc) rc = kiln_manager_server_create(&cfg, &s);
  free(addr);
  const char *bound = rc ? "" : kiln_manager_server_address(s);
  size_t blen = strlen(bound);
  char *msg = malloc(4 + blen);
  int32_t code = rc;
  if (msg) memcpy(msg, &code, 4), memcpy(msg + 4, bound, blen);
  if (!msg || kiln_channel_send(ch, msg, 4 + blen, -1) || rc) {
    free(msg);
    kiln_manager_server_destroy(s);
    return 1;
  }
  free(msg);
  watch w = {{ch, NULL}, s};
  kiln_channel *poke = NULL;
  bool watching = kiln_channel_pair(false, &w.chs[1], &poke) == 0;
  pthread_t th;
  if (watching && pthread_create(&th, NULL, watch_main, &w)) watching = false;
  if (watching) kiln_manager_server_serve(s);
  if (watching) { /* the server stopped for a client's request: end the watcher */
    kiln_channel_send(poke, "", 0, -1);
    pthread_join(th, NULL);
  }
  kiln_channel_destroy(poke);
  kiln_channel_destroy(w.chs[1]);
  kiln_manager_server_destroy(s);
  return 0;
}

/* The start argument of cfg with the key m->key: malloc'd into *arg. */
static int encode_start(const kiln_manager_config *cfg, const kiln_manager *m, uint8_t **arg,
                        size_t *len) {
  size_t alen = cfg->address ? strlen(cfg->address) : 0;
  *len = 12 + m->klen + alen;
  uint8_t *a = malloc(*len);
  if (!a) return KILN_ENOMEM;
  uint32_t klen = (uint32_t)m->klen;
  memcpy(a, &cfg->auth_timeout, 8);
  memcpy(a + 8, &klen, 4);
  memcpy(a + 12, m->key, m->klen);
  if (alen) memcpy(a + 12 + m->klen, cfg->address, alen);
  *arg = a;
  return 0;
}

/* Starts the child and reads its report: 0 with m->address, or the child's code. */
static int launch(const kiln_manager_config *cfg, kiln_manager *m) {
  uint8_t *arg;
  size_t alen;
  kiln_channel *theirs;
  int rc = encode_start(cfg, m, &arg, &alen);
  if (rc) return rc;
  if ((rc = kiln_channel_pair(true, &m->ch, &theirs))) {
    free(arg);
    return rc;
  }
  kiln_process_config pc;
  kiln_process_config_default(&pc);
  pc.start = cfg->start;
  pc.name = "kiln-manager";
  pc.channels = &theirs, pc.nchannels = 1;
  rc = kiln_process_start(&pc, manager_main, arg, alen, &m->proc);
  free(arg);
  kiln_channel_destroy(theirs);
  if (rc) return rc;
  void *msg = NULL;
  size_t len = 0;
  rc = kiln_channel_recv(m->ch, &msg, &len, START_TIMEOUT);
  int32_t code = KILN_EIO;
  if (!rc && len >= 4) memcpy(&code, msg, 4);
  if (!rc && code == 0 && !(m->address = strndup((char *)msg + 4, len - 4))) code = KILN_ENOMEM;
  free(msg);
  return rc ? KILN_EIO : code;
}

int kiln_manager_start(const kiln_manager_config *cfg, kiln_manager **out) {
  *out = NULL;
  kiln_manager_config defaults;
  if (!cfg) kiln_manager_config_default(&defaults), cfg = &defaults;
  if (cfg->authkey && (cfg->authkey_len == 0 || cfg->authkey_len > KILN__MGR_KEY_MAX))
    return KILN_EINVAL;
  kiln_manager *m = calloc(1, sizeof *m);
  if (!m) return KILN_ENOMEM;
  int rc = 0;
  if (cfg->authkey) {
    memcpy(m->key, cfg->authkey, cfg->authkey_len);
    m->klen = cfg->authkey_len;
  } else {
    m->klen = 32;
    rc = kiln__mgr_random(m->key, m->klen);
  }
  if (!rc) rc = launch(cfg, m);
  if (rc) {
    kiln_manager_shutdown(m);
    return rc;
  }
  *out = m;
  return 0;
}

const char *kiln_manager_address(const kiln_manager *m) { return m->address; }

const void *kiln_manager_authkey(const kiln_manager *m, size_t *len) {
  *len = m->klen;
  return m->key;
}

int kiln_manager_pid(const kiln_manager *m) { return kiln_process_pid(m->proc); }

int kiln_manager_shutdown(kiln_manager *m) {
  if (!m) return 0;
  int rc = 0;
  kiln_channel_destroy(m->ch); /* the server's watcher sees end of stream and stops it */
  if (m->proc && kiln_process_join(m->proc, STOP_TIMEOUT) == KILN_ETIMEDOUT) {
    kiln_process_kill(m->proc);
    kiln_process_join(m->proc, -1);
    rc = KILN_EKILLED;
  }
  kiln_process_destroy(m->proc);
  free(m->address);
  free(m);
  return rc;
}
