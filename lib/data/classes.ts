/**
 * The 18 CT-RATE abnormality classes in the labels-CSV column order (the reference's order). The stored
 * `labels` member of a canonical shard holds float32 values in exactly this order.
 */
export const CT_RATE_CLASSES: readonly string[] = [
  'Medical material',
  'Arterial wall calcification',
  'Cardiomegaly',
  'Pericardial effusion',
  'Coronary artery wall calcification',
  'Hiatal hernia',
  'Lymphadenopathy',
  'Emphysema',
  'Atelectasis',
  'Lung nodule',
  'Lung opacity',
  'Pulmonary fibrotic sequela',
  'Pleural effusion',
  'Mosaic attenuation pattern',
  'Peribronchial thickening',
  'Consolidation',
  'Bronchiectasis',
  'Interlobular septal thickening',
];

/** Columns of a labels CSV that are identifiers, not classes. */
export const LABEL_ID_COLUMNS: readonly string[] = ['VolumeName', 'study_id'];
