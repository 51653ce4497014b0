// AudioWorklet processor: hands each block of microphone samples (mono) to the page, which
// writes WAV itself (MediaRecorder's webm/opus is not something transferkit's decoder reads).

class PcmRecorder extends AudioWorkletProcessor {
  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const block = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < block.length; i++) block[i] += channel[i] / channels.length;
      }
      this.port.postMessage(block, [block.buffer]);
    }
    return true;
  }
}

registerProcessor("pcm-recorder", PcmRecorder);
