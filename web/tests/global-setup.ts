import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ARTIFACTS, ROOT } from "./gateway";

/**
 * The fake microphone's input as a WAV file (16-bit mono PCM, 48 kHz): speech-like bursts,
 * 250 ms of a changing tone then 150 ms of quiet, because a steady tone is exactly what the
 * browser's noise suppression learns to remove, and then nobody would seem to speak.
 */
function toneWav(seconds: number): Buffer {
  const rate = 48_000;
  const samples = rate * seconds;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) {
    const t = i / rate;
    const burst = Math.floor(t / 0.4);
    const inBurst = t - burst * 0.4 < 0.25;
    const frequency = 220 + ((burst * 137) % 500);
    const value = inBurst ? Math.sin(2 * Math.PI * frequency * t) * 14_000 : 0;
    data.writeInt16LE(Math.round(value), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8);
  header.write("fmt ", 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

// The UI must be built (scripts/build-web.sh) before the browser tests run.
export default function globalSetup(): void {
  const index = resolve(process.env.HUDDLE_WEB_DIR ?? resolve(ROOT, "web/dist"), "index.html");
  if (!existsSync(index)) throw new Error(`${index} is missing: run scripts/build-web.sh first`);
  const wav = resolve(ARTIFACTS, "fake-audio.wav");
  mkdirSync(dirname(wav), { recursive: true });
  writeFileSync(wav, toneWav(8));
}
