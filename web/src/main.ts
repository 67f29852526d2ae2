/** Entry point of the Safe Chat web client (bundled by the server with esbuild, served at /app/app.js). */
import { App } from './app.js';

new App().start().catch((err: unknown) => {
  console.error(err);
  const boot = document.getElementById('boot');
  if (boot) {
    boot.hidden = false;
    boot.textContent = `Safe Chat could not start: ${err instanceof Error ? err.message : String(err)}. Reload the page to try again.`;
  }
});
