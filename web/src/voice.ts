// Voice: one RTCPeerConnection to the agent's SFU. We offer our microphone; the agent answers,
// then re-offers whenever people join or leave so we receive everyone else's audio (each
// forwarded stream's id is its publisher's user id). Mute is the agent's decision (it drops a
// muted publisher's packets); the track is also disabled locally so nothing is even sent.

import type { ClientMessage, ServerMessage } from "./protocol";

export type VoiceStatus = "off" | "joining" | "on" | "failed";

export interface VoiceHost {
  send(message: ClientMessage): void;
  status(status: VoiceStatus, detail?: string): void;
  /** Someone's speaking state, measured from the audio we play (or capture, for us). */
  speaking(userId: string, speaking: boolean): void;
  myUserId(): string | undefined;
}

interface Remote {
  stream: MediaStream;
  audio: HTMLAudioElement;
  analyser: AnalyserNode;
}

/** Above this RMS level (0..1) someone counts as speaking. */
const SPEAKING_LEVEL = 0.02;

export class Voice {
  private pc: RTCPeerConnection | null = null;
  private mic: MediaStream | null = null;
  private audioContext: AudioContext | null = null;
  private micAnalyser: AnalyserNode | null = null;
  private readonly remotes = new Map<string, Remote>();
  private readonly volumes = new Map<string, number>();
  private readonly speakingNow = new Map<string, boolean>();
  private meter: number | undefined;
  status: VoiceStatus = "off";
  muted = false;

  constructor(
    private readonly host: VoiceHost,
    private readonly configUrl: () => URL,
    private readonly token: () => string | undefined,
  ) {}

  async join(): Promise<void> {
    if (this.status === "joining" || this.status === "on") return;
    this.setStatus("joining");
    try {
      const iceServers = await this.iceServers();
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      const pc = new RTCPeerConnection({ iceServers });
      this.pc = pc;
      for (const track of this.mic.getAudioTracks()) {
        track.enabled = !this.muted;
        pc.addTrack(track, this.mic);
      }
      pc.onicecandidate = (event) => {
        const c = event.candidate;
        this.host.send({
          type: "voice_candidate",
          candidate: c?.candidate ?? "",
          sdp_mid: c?.sdpMid ?? null,
          sdp_mline_index: c?.sdpMLineIndex ?? null,
        });
      };
      pc.ontrack = (event) => {
        const stream = event.streams[0];
        if (stream) this.addRemote(stream);
      };
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "connected") this.setStatus("on");
        if (pc.connectionState === "failed") this.fail("the audio connection failed");
      };
      this.startMeter();
      this.host.send({ type: "voice_join" });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.host.send({ type: "voice_offer", sdp: offer.sdp ?? "" });
    } catch (error) {
      this.fail((error as Error).message);
    }
  }

  leave(): void {
    if (this.status === "off") return;
    this.host.send({ type: "voice_leave" });
    this.teardown();
    this.setStatus("off");
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    for (const track of this.mic?.getAudioTracks() ?? []) track.enabled = !muted;
    if (this.status !== "off") this.host.send({ type: "voice_mute", muted });
  }

  setVolume(userId: string, volume: number): void {
    this.volumes.set(userId, volume);
    const remote = this.remotes.get(userId);
    if (remote) remote.audio.volume = volume;
  }

  volume(userId: string): number {
    return this.volumes.get(userId) ?? 1;
  }

  /** Handles the voice messages from the agent; returns false for anything else. */
  async handle(message: ServerMessage): Promise<boolean> {
    const pc = this.pc;
    switch (message.type) {
      case "voice_answer":
        if (pc) await pc.setRemoteDescription({ type: "answer", sdp: message.sdp }).catch((e) => this.fail(e.message));
        return true;
      case "voice_offer":
        if (!pc) return true;
        try {
          await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          this.host.send({ type: "voice_answer", sdp: answer.sdp ?? "" });
          this.pruneRemotes();
        } catch (error) {
          this.fail((error as Error).message);
        }
        return true;
      case "voice_candidate":
        if (pc && message.candidate) {
          await pc
            .addIceCandidate({
              candidate: message.candidate,
              sdpMid: message.sdp_mid,
              sdpMLineIndex: message.sdp_mline_index,
            })
            .catch(() => undefined);
        }
        return true;
      case "error":
        if (message.code !== "voice_failed") return false;
        this.fail(message.message);
        return true;
      default:
        return false;
    }
  }

  /** For tests and diagnostics: audio packets and bytes received, per the browser. */
  async stats(): Promise<{ packetsReceived: number; bytesReceived: number; tracks: number }> {
    let packetsReceived = 0;
    let bytesReceived = 0;
    const report = await this.pc?.getStats();
    report?.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        packetsReceived += s.packetsReceived ?? 0;
        bytesReceived += s.bytesReceived ?? 0;
      }
    });
    return { packetsReceived, bytesReceived, tracks: this.remotes.size };
  }

  private async iceServers(): Promise<RTCIceServer[]> {
    const token = this.token();
    const response = await fetch(this.configUrl(), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok) throw new Error(`voice configuration: HTTP ${response.status}`);
    const body = (await response.json()) as { iceServers?: RTCIceServer[] };
    return body.iceServers ?? [];
  }

  private addRemote(stream: MediaStream): void {
    const userId = stream.id;
    if (userId === this.host.myUserId()) return;
    const old = this.remotes.get(userId);
    if (old?.stream === stream) return;
    old?.audio.remove();
    const audio = document.createElement("audio");
    audio.autoplay = true;
    audio.srcObject = stream;
    audio.volume = this.volume(userId);
    audio.dataset.user = userId;
    document.body.appendChild(audio);
    const analyser = this.context().createAnalyser();
    this.context().createMediaStreamSource(stream).connect(analyser);
    this.remotes.set(userId, { stream, audio, analyser });
    stream.onremovetrack = () => {
      if (stream.getTracks().length === 0) this.removeRemote(userId);
    };
  }

  private pruneRemotes(): void {
    for (const [userId, remote] of this.remotes) {
      if (remote.stream.getAudioTracks().every((t) => t.readyState === "ended")) this.removeRemote(userId);
    }
  }

  private removeRemote(userId: string): void {
    const remote = this.remotes.get(userId);
    if (!remote) return;
    remote.audio.srcObject = null;
    remote.audio.remove();
    this.remotes.delete(userId);
    this.report(userId, false);
  }

  private context(): AudioContext {
    this.audioContext ??= new AudioContext();
    return this.audioContext;
  }

  /** Every 100 ms: who is loud enough to count as speaking (us included, unless muted). */
  private startMeter(): void {
    if (this.mic) {
      this.micAnalyser = this.context().createAnalyser();
      this.context().createMediaStreamSource(this.mic).connect(this.micAnalyser);
    }
    const buffer = new Float32Array(1024);
    const level = (analyser: AnalyserNode) => {
      analyser.getFloatTimeDomainData(buffer);
      let sum = 0;
      for (const v of buffer) sum += v * v;
      return Math.sqrt(sum / buffer.length);
    };
    window.clearInterval(this.meter);
    this.meter = window.setInterval(() => {
      const me = this.host.myUserId();
      if (me && this.micAnalyser) this.report(me, !this.muted && level(this.micAnalyser) > SPEAKING_LEVEL);
      for (const [userId, remote] of this.remotes) this.report(userId, level(remote.analyser) > SPEAKING_LEVEL);
    }, 100);
  }

  private report(userId: string, speaking: boolean): void {
    if (this.speakingNow.get(userId) === speaking) return;
    this.speakingNow.set(userId, speaking);
    this.host.speaking(userId, speaking);
  }

  private fail(reason: string): void {
    this.teardown();
    this.setStatus("failed", reason);
  }

  private teardown(): void {
    window.clearInterval(this.meter);
    this.pc?.close();
    this.pc = null;
    for (const track of this.mic?.getTracks() ?? []) track.stop();
    this.mic = null;
    for (const userId of [...this.remotes.keys()]) this.removeRemote(userId);
    const me = this.host.myUserId();
    if (me) this.report(me, false);
  }

  private setStatus(status: VoiceStatus, detail?: string): void {
    this.status = status;
    this.host.status(status, detail);
  }
}
