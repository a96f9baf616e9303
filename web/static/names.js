// What a person reads for a device: the registry's name (a collector's name, a vehicle's
// plate, a sensor's name), the id only for a device the registry does not know.

export function deviceLabel(device) {
  return (device && typeof device.label === 'string' && device.label) || (device && device.id) || '';
}

// The registry's fields beside the label, as "plate · person · component" (no repeats).
export function deviceFacts(device) {
  const label = deviceLabel(device);
  const facts = [];
  for (const key of ['plate', 'person', 'name']) {
    const value = device[key];
    if (typeof value === 'string' && value && value !== label && !facts.includes(value)) facts.push(value);
  }
  return facts;
}

// Words a filter may match: the label, plate, person, name and component code.
export function nameTerms(device) {
  return ['label', 'plate', 'person', 'name', 'component'].map((key) => device[key]).filter((v) => typeof v === 'string');
}

// An alarm's measured value against its limit: "35.5° / 限值 10°".
export function valueAndLimit(alarm, unit = '') {
  const number = (v) => `${Number(v).toLocaleString('zh-CN', { maximumFractionDigits: 1 })}${unit}`;
  if (alarm.value == null && alarm.limit == null) return '';
  if (alarm.limit == null) return number(alarm.value);
  if (alarm.value == null) return `限值 ${number(alarm.limit)}`;
  return `${number(alarm.value)} / 限值 ${number(alarm.limit)}`;
}
