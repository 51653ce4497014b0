// The webcam and the microphone: frames as PNG, sound as 16-bit WAV encoded here, and the
// hold-to-record button both use.

/** Start the webcam into `video`; returns the stream (stop it with stopStream). */
export async function openCamera(video) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 320 }, height: { ideal: 240 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  return stream;
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/** The video's current frame, centre-cropped to a square of `side` pixels, as a PNG blob. */
export function grabFrame(video, side = 224) {
  const w = video.videoWidth;
  const hgt = video.videoHeight;
  const crop = Math.min(w, hgt);
  const canvas = document.createElement("canvas");
  canvas.width = side;
  canvas.height = side;
  canvas.getContext("2d").drawImage(video, (w - crop) / 2, (hgt - crop) / 2, crop, crop,
    0, 0, side, side);
  return new Promise((resolve, reject) =>
    canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("the frame could not be encoded"))),
      "image/png"));
}

/** Mono float samples → a 16-bit PCM WAV blob. */
export function encodeWav(samples, sampleRate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const view = new DataView(buffer);
  const text = (offset, value) => {
    for (let i = 0; i < value.length; i++) view.setUint8(offset + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + i * 2, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

function concat(blocks, length) {
  const out = new Float32Array(length);
  let at = 0;
  for (const block of blocks) {
    out.set(block.subarray(0, Math.min(block.length, length - at)), at);
    at += block.length;
    if (at >= length) break;
  }
  return out;
}

/**
 * The microphone, cut into clips: while `record(seconds, onClip)` runs, every `seconds` of
 * sound becomes a WAV blob given to `onClip`; `stop()` ends it (a last partial clip of at least
 * half the length is kept). `onLevel(rms)` hears every block, for a level meter.
 */
export class Microphone {
  async open() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
      video: false,
    });
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/static/pcm-worklet.js");
    const source = this.context.createMediaStreamSource(this.stream);
    const node = new AudioWorkletNode(this.context, "pcm-recorder");
    // a silent path to the speakers keeps the node pulled by the graph, without echo
    const mute = this.context.createGain();
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(this.context.destination);
    node.port.onmessage = (event) => this.#block(event.data);
    this.node = node;
    this.onLevel = null;
    this.clip = null;
    await this.context.resume();
    return this;
  }

  get sampleRate() {
    return this.context.sampleRate;
  }

  record(seconds, onClip) {
    this.clip = { size: Math.round(seconds * this.sampleRate), blocks: [], length: 0, onClip };
  }

  stop() {
    const clip = this.clip;
    this.clip = null;
    if (clip && clip.length >= clip.size / 2) {
      clip.onClip(encodeWav(concat(clip.blocks, clip.length), this.sampleRate));
    }
  }

  #block(samples) {
    if (this.onLevel) {
      let sum = 0;
      for (const x of samples) sum += x * x;
      this.onLevel(Math.sqrt(sum / samples.length));
    }
    const clip = this.clip;
    if (!clip) return;
    clip.blocks.push(samples);
    clip.length += samples.length;
    if (clip.length >= clip.size) {
      const all = concat(clip.blocks, clip.length);
      clip.blocks = [all.subarray(clip.size)];
      clip.length = clip.blocks[0].length;
      clip.onClip(encodeWav(all.subarray(0, clip.size), this.sampleRate));
    }
  }

  close() {
    this.clip = null;
    if (this.node) this.node.port.onmessage = null;
    stopStream(this.stream);
    if (this.context) this.context.close();
  }
}

/**
 * Hold `button` (mouse, touch, or Space/Enter held) to record: `start()` when pressed, `stop()`
 * when released. Returns a function that releases it from code (e.g. when a limit is reached).
 */
export function holdToRecord(button, { start, stop }) {
  let held = false;
  const press = (event) => {
    if (held || button.disabled) return;
    held = true;
    event.preventDefault();
    if (event.pointerId !== undefined) button.setPointerCapture(event.pointerId);
    button.classList.add("recording");
    start();
  };
  const release = () => {
    if (!held) return;
    held = false;
    button.classList.remove("recording");
    stop();
  };
  button.addEventListener("pointerdown", press);
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  button.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) press(e);
  });
  button.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") release();
  });
  return release;
}
