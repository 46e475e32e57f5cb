/**
 * Weights in and out: PyTorch torch.save import (restricted unpickler), safetensors, Hugging Face BERT
 * folders, the reference key list, and our torch.save / HF-folder writers. See docs/weights.md.
 */
export { importTorchFile, type ImportedWeights, type ImportOptions } from './import-torch';
export {
  loadWeightsFile,
  importSafetensorsFile,
  readModelSafetensors,
  sniffWeightsFormat,
  type WeightsFormat,
} from './load';
export { assertFiniteWeights, importBudget, DEFAULT_MAX_IMPORT_BYTES } from './limits';
export { saveWeights } from './save';
export { importHfBertFolder, parseHfBertConfig, type HfBertImport, type HfTextEncoderConfig } from './hf-bert';
export { writeHfBertFolder, type HfFolderOptions } from './hf-folder-writer';
export { writeTorchSave, type TorchSaveEntry, type TorchSaveOptions } from './torch-save';
export {
  readTorchArchive,
  TorchTensorRef,
  TORCH_STORAGE_TYPES,
  type TorchArchive,
  type TorchStorageRef,
} from './torch-file';
export {
  mapKeys,
  REFACTOR_LAYOUT_NAME,
  WRAPPER_KEYS,
  type DroppedKey,
  type Expect,
  type ShapeMismatch,
  type WeightsReport,
} from './layout';
export { ctclipReferenceKeys, bertReferenceKeys, ctvitReferenceKeys, type ReferenceKey } from './reference-keys';
