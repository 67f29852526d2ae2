/** The client layer of @safechat/sdk: REST, WebSocket and the high-level end-to-end client. */
export { SafeChatClient, type ChatItem, type ClientStores, type IdentityChange, type SafeChatClientEvents, type SafeChatClientOptions } from './safechat.js';
export { HttpClient, type FetchLike, type HttpClientEvents, type HttpClientOptions, type ChatPageQuery, type MessagePageQuery, type TokenSource } from './http.js';
export { SafeChatSocket, type SocketEvents, type SocketOptions, type SocketState, type WebSocketConstructor, type WebSocketLike } from './socket.js';
export { ApiError, IdentityMismatchError, SignedOutError, type ApiErrorCode } from './errors.js';
export {
  MemoryCursorStore,
  MemoryMessageStore,
  MemoryTokenStore,
  type CursorStore,
  type MessageStore,
  type StoredMessage,
  type StoredTokens,
  type TokenStore,
} from './stores.js';
export { Emitter, type Handler } from './emitter.js';
