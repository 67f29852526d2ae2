import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DatabaseLoad } from './storage/db.js';

/** Prometheus metrics, one registry per app instance (tests run several in one process). */
export class Telemetry {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'safechat_http_requests_total',
    help: 'HTTP requests answered, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'safechat_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({ name: 'safechat_ws_connections', help: 'Open authenticated WebSocket connections', registers: [this.registry] });
  readonly wsOpened = new Counter({ name: 'safechat_ws_connections_total', help: 'WebSocket connections authenticated', registers: [this.registry] });
  readonly wsClosed = new Counter({
    name: 'safechat_ws_closed_total',
    help: 'WebSocket connections closed by the server, by close code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly wsFramesIn = new Counter({
    name: 'safechat_ws_frames_received_total',
    help: 'WebSocket frames received, by frame type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly wsEventsOut = new Counter({ name: 'safechat_ws_events_sent_total', help: 'Events written to WebSocket connections', registers: [this.registry] });
  readonly messagesStored = new Counter({ name: 'safechat_messages_stored_total', help: 'Messages accepted and stored', registers: [this.registry] });
  readonly messageBytes = new Counter({ name: 'safechat_message_bytes_total', help: 'Ciphertext bytes accepted (decoded)', registers: [this.registry] });
  readonly statusUpdates = new Counter({
    name: 'safechat_message_status_updates_total',
    help: 'Message status changes, by new status',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'safechat_rate_limited_total',
    help: 'Requests or frames refused by a rate limit, by limit',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'safechat_' });
  }

  /** Gauges read from the database at each scrape: the pool's (or commit queue's) backlog. */
  watchDatabase(load: () => DatabaseLoad): void {
    new Gauge({
      name: 'safechat_db_waiting',
      help: 'Units of work waiting for a pooled connection (PostgreSQL) or a commit group (SQLite)',
      registers: [this.registry],
      collect() {
        this.set(load().waiting);
      },
    });
    new Gauge({
      name: 'safechat_db_connections',
      help: 'Database connections, by state (busy, idle)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const now = load();
        this.set({ state: 'busy' }, now.busy);
        this.set({ state: 'idle' }, now.idle);
      },
    });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
