// Labels for patrol alerts, component and vehicle alarms and alert resolutions: the Chinese
// label is shown, the English title goes in the tooltip. Unknown kinds show their code.

export const ALERT_KINDS = Object.freeze({
  grid_not_covered: { zh: '网格未巡查', en: 'grid not covered', level: 'high' },
  coverage_warning: { zh: '即将超时', en: 'coverage warning', level: 'warn' },
  offline: { zh: '离线', en: 'offline', level: 'muted' },
  off_grid: { zh: '越界', en: 'off grid', level: 'warn' },
  stationary: { zh: '滞留', en: 'stationary', level: 'warn' },
  battery_low: { zh: '电量低', en: 'battery low', level: 'warn' },
  not_started: { zh: '未上岗', en: 'not started', level: 'high' },
});

export const ALARM_KINDS = Object.freeze({
  // component sensors
  tilt: { zh: '井盖倾斜', en: 'tilt', unit: '°', level: 'high' },
  water: { zh: '井内水位高', en: 'water level', unit: ' cm', level: 'warn' },
  gas: { zh: '可燃气体', en: 'gas', unit: ' ppm', level: 'high' },
  smoke: { zh: '烟雾', en: 'smoke', level: 'high' },
  full: { zh: '满溢', en: 'full', unit: '%', level: 'warn' },
  waterlog: { zh: '积水', en: 'waterlog', unit: ' cm', level: 'warn' },
  low_battery: { zh: '电量低', en: 'battery low', unit: '%', level: 'muted' },
  flapping: { zh: '频繁跳变', en: 'flapping', level: 'muted' },
  silent: { zh: '设备失联', en: 'silent', unit: ' min', level: 'muted' },
  // vehicle terminals (JT/T 808 alarm bits)
  sos: { zh: '紧急报警', en: 'sos', level: 'critical' },
  overspeed: { zh: '超速', en: 'overspeed', unit: ' km/h', level: 'warn' },
  fatigue: { zh: '疲劳驾驶', en: 'fatigue driving', level: 'warn' },
  gnss_fault: { zh: '定位故障', en: 'GNSS fault', level: 'muted' },
  low_power: { zh: '主电源欠压', en: 'low supply voltage', level: 'muted' },
  power_off: { zh: '主电源掉电', en: 'supply power off', level: 'warn' },
  overtime_parking: { zh: '超时停车', en: 'overtime parking', level: 'warn' },
  area: { zh: '进出区域', en: 'area in/out', level: 'warn' },
  route: { zh: '进出路线', en: 'route in/out', level: 'warn' },
  stolen: { zh: '车辆被盗', en: 'stolen', level: 'critical' },
  illegal_displacement: { zh: '非法位移', en: 'illegal displacement', level: 'high' },
  collision: { zh: '碰撞', en: 'collision', level: 'critical' },
  rollover: { zh: '侧翻', en: 'rollover', level: 'critical' },
});

export const RESOLUTIONS = Object.freeze({
  'late fixes show it did not happen': '迟到定位表明未发生',
  'condition cleared': '已恢复',
  'slot ended': '班次结束',
  'slot withdrawn from the schedule': '班次已撤销',
});

export const ALARM_SOURCES = Object.freeze({
  sensor: '部件',
  vehicle: '车辆',
  handset: '手持终端',
});

function describe(table, kind) {
  const entry = Object.hasOwn(table, kind) ? table[kind] : null;
  return {
    label: entry ? entry.zh : String(kind),
    title: entry ? `${entry.zh} ${entry.en}` : String(kind),
    level: entry ? entry.level : 'warn',
    unit: (entry && entry.unit) || '',
  };
}

export const alertKind = (kind) => describe(ALERT_KINDS, kind);
export const alarmKind = (kind) => describe(ALARM_KINDS, kind);

export function resolutionText(resolution) {
  if (!resolution) return '已解除';
  const zh = Object.hasOwn(RESOLUTIONS, resolution) ? RESOLUTIONS[resolution] : null;
  return zh ? `${zh}（${resolution}）` : String(resolution);
}
