/** A minimal promise wrapper over IndexedDB: one request per transaction, resolved when it commits. */

export type Upgrade = (db: IDBDatabase, oldVersion: number) => void;

export function openDatabase(name: string, version: number, upgrade: Upgrade): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = (ev) => upgrade(r.result, ev.oldVersion);
    r.onsuccess = () => {
      const db = r.result;
      // Another tab upgrading or deleting this database: let it, this connection is done.
      db.onversionchange = () => db.close();
      resolve(db);
    };
    r.onerror = () => reject(r.error ?? new Error(`cannot open ${name}`));
    // onblocked: an older connection elsewhere gets `versionchange`, closes, and this one goes on.
  });
}

export function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error ?? new Error(`cannot delete ${name}`));
    // onblocked: other connections get `versionchange` and close (see openDatabase); the delete then goes on.
  });
}

/**
 * Runs one request in its own transaction and resolves with its result once the transaction has
 * committed (so a write is durable before the caller goes on: the SDK saves the event cursor only
 * after the message and the session it changed are stored). Writes ask for strict durability.
 */
export function run<T>(db: IDBDatabase, store: string, mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode, { durability: mode === 'readwrite' ? 'strict' : 'default' });
    const r = op(t.objectStore(store));
    t.oncomplete = () => resolve(r.result);
    t.onerror = () => reject(t.error ?? r.error ?? new Error('IndexedDB request failed'));
    t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
  });
}

/** Walks a key range of an index (or store) in `direction`, collecting at most `limit` values. */
export function collect<T>(
  db: IDBDatabase,
  store: string,
  source: (s: IDBObjectStore) => IDBObjectStore | IDBIndex,
  range: IDBKeyRange | null,
  direction: IDBCursorDirection,
  limit: number,
): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, 'readonly');
    const out: T[] = [];
    const c = source(t.objectStore(store)).openCursor(range, direction);
    c.onsuccess = () => {
      const cur = c.result;
      if (!cur || out.length >= limit) return;
      out.push(cur.value as T);
      cur.continue();
    };
    t.oncomplete = () => resolve(out);
    t.onerror = () => reject(t.error ?? new Error('IndexedDB cursor failed'));
  });
}
